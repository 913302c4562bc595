/* The folder scan's hot loop in C: list one open folder, stat its entries, fill the listing.
 *
 * Optional speedup of app.locations.folder.scan.TreeScan._list, which stays the reference and
 * the fallback where this module did not build; the two must list exactly the same (the
 * equivalence tests run both over the same trees). What is gained: the readdir and fstatat
 * calls of a whole folder run with the interpreter lock released, into a C buffer, so two
 * locations scanned by two threads use two cores instead of handing the lock back and forth
 * around every system call; then, with the lock held, each file costs one string and one meta
 * built directly (no os.DirEntry, no os.stat_result).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "_timens.h"

enum kind { K_FILE, K_FOLDER, K_LINK, K_TEMP };

typedef struct {
    size_t name; /* offset of the name in the names buffer (NUL-terminated there) */
    size_t len;
    int kind;
    int64_t size;
    int64_t mtime_sec;
    long mtime_nsec;
    uint64_t tag;
    uint64_t dev;
    uint64_t ino;
    uint64_t nlink;
} Entry;

typedef struct {
    Entry *entries;
    size_t count, cap;
    char *names;
    size_t used, room;
    int error;        /* errno of the failure, 0 if none */
    int error_at_name; /* the failure was a stat of entries[count] (else: listing the folder) */
} Listed;

/* Set once by configure(): FileMeta, the temp prefix, and the names owned at the root. */
static PyTypeObject *meta_type = NULL;
static char temp_prefix[256];
static size_t temp_prefix_len = 0;
#define MAX_ROOT_NAMES 8
static char root_names[MAX_ROOT_NAMES][256];
static size_t root_names_count = 0;

static const uint64_t TAG_MASK = (UINT64_C(1) << 63) - 1;

static int
grow(Listed *out, size_t name_len)
{
    if (out->count == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 128;
        Entry *entries = realloc(out->entries, cap * sizeof(Entry));
        if (entries == NULL) {
            return ENOMEM;
        }
        out->entries = entries;
        out->cap = cap;
    }
    if (out->used + name_len + 1 > out->room) {
        size_t room = out->room ? out->room * 2 : 8192;
        while (out->used + name_len + 1 > room) {
            room *= 2;
        }
        char *names = realloc(out->names, room);
        if (names == NULL) {
            return ENOMEM;
        }
        out->names = names;
        out->room = room;
    }
    return 0;
}

static int
is_root_name(const char *name, size_t len)
{
    for (size_t i = 0; i < root_names_count; i++) {
        if (strlen(root_names[i]) == len && memcmp(root_names[i], name, len) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Read the folder ``fd`` into ``out``; no Python object is touched (the lock is released). */
static void
collect(int fd, int at_root, Listed *out)
{
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) {
        out->error = errno;
        return;
    }
    DIR *dir = fdopendir(dup_fd);
    if (dir == NULL) {
        out->error = errno;
        close(dup_fd);
        return;
    }
    for (;;) {
        errno = 0;
        struct dirent *ent = readdir(dir);
        if (ent == NULL) {
            out->error = errno;
            break;
        }
        const char *name = ent->d_name;
        if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) {
            continue;
        }
        size_t len = strlen(name);
        int kind;
        struct stat st;
        int stated = 0;
        if (len >= temp_prefix_len && memcmp(name, temp_prefix, temp_prefix_len) == 0) {
            kind = K_TEMP;
        }
        else if (at_root && is_root_name(name, len)) {
            continue;
        }
        else if (ent->d_type == DT_DIR) {
            kind = K_FOLDER;
        }
        else if (ent->d_type == DT_LNK) {
            kind = K_LINK;
        }
        else if (ent->d_type == DT_REG || ent->d_type == DT_UNKNOWN) {
            if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
                if (errno == ENOENT) {
                    continue; /* gone since it was listed */
                }
                int err = errno;
                if (grow(out, len) != 0) {
                    out->error = ENOMEM;
                    break;
                }
                out->entries[out->count].name = out->used;
                out->entries[out->count].len = len;
                memcpy(out->names + out->used, name, len + 1);
                out->error = err;
                out->error_at_name = 1;
                break;
            }
            stated = 1;
            if (S_ISREG(st.st_mode)) {
                kind = K_FILE;
            }
            else if (S_ISLNK(st.st_mode)) {
                kind = K_LINK; /* replaced by a link since it was listed */
            }
            else if (S_ISDIR(st.st_mode)) {
                kind = K_FOLDER;
            }
            else {
                continue;
            }
        }
        else {
            continue; /* a fifo, socket or device */
        }
        if (grow(out, len) != 0) {
            out->error = ENOMEM;
            break;
        }
        Entry *e = &out->entries[out->count++];
        e->name = out->used;
        e->len = len;
        e->kind = kind;
        memcpy(out->names + out->used, name, len + 1);
        out->used += len + 1;
        if (stated && kind == K_FILE) {
            uint64_t ctime_ns = (uint64_t)st.st_ctim.tv_sec * UINT64_C(1000000000) +
                                (uint64_t)st.st_ctim.tv_nsec;
            e->size = (int64_t)st.st_size;
            e->mtime_sec = (int64_t)st.st_mtim.tv_sec;
            e->mtime_nsec = st.st_mtim.tv_nsec;
            /* (ino * 1_000_003 ^ ctime_ns) & (2**63 - 1) on Python's unbounded integers keeps
             * only the low 63 bits, which modulo-2**64 arithmetic computes exactly. */
            e->tag = (((uint64_t)st.st_ino * UINT64_C(1000003)) ^ ctime_ns) & TAG_MASK;
            e->dev = (uint64_t)st.st_dev;
            e->ino = (uint64_t)st.st_ino;
            e->nlink = (uint64_t)st.st_nlink;
        }
    }
    rewinddir(dir); /* the duplicate shares the caller's offset: leave it at the start */
    closedir(dir);
}

/* ``base + name`` decoded as os.fsdecode does; built in place when both are ASCII. */
static PyObject *
joined(PyObject *base, const char *name, size_t len)
{
    if (PyUnicode_IS_ASCII(base)) {
        size_t i = 0;
        while (i < len && (unsigned char)name[i] < 0x80) {
            i++;
        }
        if (i == len) {
            Py_ssize_t blen = PyUnicode_GET_LENGTH(base);
            PyObject *rel = PyUnicode_New(blen + (Py_ssize_t)len, 127);
            if (rel == NULL) {
                return NULL;
            }
            memcpy(PyUnicode_1BYTE_DATA(rel), PyUnicode_1BYTE_DATA(base), (size_t)blen);
            memcpy(PyUnicode_1BYTE_DATA(rel) + blen, name, len);
            return rel;
        }
    }
    PyObject *decoded = PyUnicode_DecodeFSDefaultAndSize(name, (Py_ssize_t)len);
    if (decoded == NULL) {
        return NULL;
    }
    PyObject *rel = PyUnicode_Concat(base, decoded);
    Py_DECREF(decoded);
    return rel;
}

static PyObject *
new_meta(const Entry *e)
{
    PyObject *size = PyLong_FromLongLong(e->size);
    PyObject *mtime = time_ns_object(e->mtime_sec, e->mtime_nsec);
    PyObject *tag = PyLong_FromUnsignedLongLong(e->tag);
    PyObject *meta = NULL;
    if (size && mtime && tag) {
        /* What tuple.__new__(FileMeta, (size, mtime, tag)) builds. */
        meta = meta_type->tp_alloc(meta_type, 3);
    }
    if (meta == NULL) {
        Py_XDECREF(size);
        Py_XDECREF(mtime);
        Py_XDECREF(tag);
        return NULL;
    }
    PyTuple_SET_ITEM(meta, 0, size);
    PyTuple_SET_ITEM(meta, 1, mtime);
    PyTuple_SET_ITEM(meta, 2, tag);
    /* Three integers cannot be part of a cycle: keep the collector from walking it (it would
     * untrack it itself, after a first walk). */
    PyObject_GC_UnTrack(meta);
    return meta;
}

/* Add one listed entry to the caller's collections (the lock is held). 0, or -1 on error. */
static int
add_entry(const Listed *out, const Entry *e, PyObject *base, PyObject *files, PyObject *links,
          PyObject *hard_links, PyObject *subfolders, PyObject *temps)
{
    const char *name = out->names + e->name;
    if (e->kind == K_FOLDER || e->kind == K_TEMP) {
        PyObject *decoded = PyUnicode_DecodeFSDefaultAndSize(name, (Py_ssize_t)e->len);
        if (decoded == NULL) {
            return -1;
        }
        int failed = PyList_Append(e->kind == K_FOLDER ? subfolders : temps, decoded);
        Py_DECREF(decoded);
        return failed;
    }
    PyObject *rel = joined(base, name, e->len);
    if (rel == NULL) {
        return -1;
    }
    if (e->kind == K_LINK) {
        int failed = PySet_Add(links, rel);
        Py_DECREF(rel);
        return failed;
    }
    PyUnicode_InternInPlace(&rel);
    PyObject *meta = new_meta(e);
    if (meta == NULL) {
        Py_DECREF(rel);
        return -1;
    }
    int failed = PyDict_SetItem(files, rel, meta);
    Py_DECREF(meta);
    if (!failed && e->nlink > 1) {
        PyObject *id = Py_BuildValue("(KK)", (unsigned long long)e->dev,
                                     (unsigned long long)e->ino);
        failed = id == NULL ? -1 : PyDict_SetItem(hard_links, rel, id);
        Py_XDECREF(id);
    }
    Py_DECREF(rel);
    return failed;
}

PyDoc_STRVAR(list_folder_doc,
"list_folder(fd, base, at_root, files, links, hard_links) -> (subfolders, temps)\n\n"
"List the open folder ``fd`` (relative path ``base``, ending in '/' unless empty) as\n"
"TreeScan._list does: each regular file goes into ``files`` as base + name -> FileMeta\n"
"(interned), into ``hard_links`` as (dev, ino) if it has several names; each symbolic link\n"
"into ``links``. Returns the subfolders' names and the temp files' names (for the caller to\n"
"remove). Raises OSError as os.scandir and os.DirEntry.stat would.");

static PyObject *
list_folder(PyObject *module, PyObject *args)
{
    int fd, at_root;
    PyObject *base, *files, *links, *hard_links;
    if (!PyArg_ParseTuple(args, "iUpO!O!O!:list_folder", &fd, &base, &at_root, &PyDict_Type,
                          &files, &PySet_Type, &links, &PyDict_Type, &hard_links)) {
        return NULL;
    }
    if (meta_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "list_folder called before configure");
        return NULL;
    }
    Listed out = {0};
    Py_BEGIN_ALLOW_THREADS
    collect(fd, at_root, &out);
    Py_END_ALLOW_THREADS

    PyObject *result = NULL, *subfolders = NULL, *temps = NULL;
    if (out.error != 0) {
        errno = out.error;
        if (out.error_at_name) {
            const Entry *e = &out.entries[out.count];
            PyObject *name = PyUnicode_DecodeFSDefaultAndSize(out.names + e->name,
                                                              (Py_ssize_t)e->len);
            if (name != NULL) {
                PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, name);
                Py_DECREF(name);
            }
        }
        else {
            PyObject *where = PyLong_FromLong(fd);
            if (where != NULL) {
                PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, where);
                Py_DECREF(where);
            }
        }
        goto done;
    }
    subfolders = PyList_New(0);
    temps = PyList_New(0);
    if (subfolders == NULL || temps == NULL) {
        goto done;
    }
    for (size_t i = 0; i < out.count; i++) {
        if (add_entry(&out, &out.entries[i], base, files, links, hard_links, subfolders,
                      temps) != 0) {
            goto done;
        }
    }
    result = PyTuple_Pack(2, subfolders, temps);
done:
    Py_XDECREF(subfolders);
    Py_XDECREF(temps);
    free(out.entries);
    free(out.names);
    return result;
}

PyDoc_STRVAR(configure_doc,
"configure(meta_type, temp_prefix, root_names)\n\n"
"Set, once before any list_folder, the FileMeta type to build, the temp files' name prefix,\n"
"and the names FileSync owns at a location's root (all as the file system's bytes).");

static PyObject *
configure(PyObject *module, PyObject *args)
{
    PyObject *type, *names;
    const char *prefix;
    Py_ssize_t prefix_len;
    if (!PyArg_ParseTuple(args, "O!y#O!:configure", &PyType_Type, &type, &prefix, &prefix_len,
                          &PyTuple_Type, &names)) {
        return NULL;
    }
    if (!PyType_IsSubtype((PyTypeObject *)type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "meta_type must be a tuple subclass");
        return NULL;
    }
    if (prefix_len == 0 || (size_t)prefix_len >= sizeof(temp_prefix) ||
        PyTuple_GET_SIZE(names) > MAX_ROOT_NAMES) {
        PyErr_SetString(PyExc_ValueError, "temp prefix or root names out of range");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
        PyObject *item = PyTuple_GET_ITEM(names, i);
        if (!PyBytes_Check(item) || (size_t)PyBytes_GET_SIZE(item) >= sizeof(root_names[0]) ||
            strlen(PyBytes_AS_STRING(item)) != (size_t)PyBytes_GET_SIZE(item)) {
            PyErr_SetString(PyExc_ValueError, "root names must be short bytes without NUL");
            return NULL;
        }
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
        PyObject *item = PyTuple_GET_ITEM(names, i);
        memcpy(root_names[i], PyBytes_AS_STRING(item), (size_t)PyBytes_GET_SIZE(item) + 1);
    }
    root_names_count = (size_t)PyTuple_GET_SIZE(names);
    memcpy(temp_prefix, prefix, (size_t)prefix_len);
    temp_prefix_len = (size_t)prefix_len;
    Py_INCREF(type);
    Py_XSETREF(meta_type, (PyTypeObject *)type);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"list_folder", list_folder, METH_VARARGS, list_folder_doc},
    {"configure", configure, METH_VARARGS, configure_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "app.locations.folder._scan",
    "The folder scan's per-folder loop in C (see app.locations.folder.scan).",
    -1,
    methods,
};

PyMODINIT_FUNC
PyInit__scan(void)
{
    return PyModule_Create(&module_def);
}
