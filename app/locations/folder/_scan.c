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
#include <sys/vfs.h>
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
/* meta_type adds no field to a tuple's (a named tuple's ``__slots__ = ()``): new_meta can
 * allocate it as a tuple of exactly three items. */
static int lean_meta = 0;
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

/* Integers that repeat are shared, not built again for every file: a meta then owns little
 * more than its tuple and its tag (which names the inode, so it is the file's own). Two ways:
 *
 * - Peers: the listings of other locations' scans running at the same time (the engine scans
 *   every location at once). Where one of them already holds the same path with the same
 *   size and mtime, as a copy made with its times (rsync -a, cp -a, a restore, FileSync's
 *   own copies) does, its integers are taken, and its whole meta where the tag matches too.
 *   Folders are listed with the lock held from the first entry to the last, so whichever
 *   location lists a folder second shares with the first, every time.
 * - A small direct-mapped table of the sizes and times built last: small sizes repeat, and
 *   files written in one burst often share the clock's coarse tick. A slot holds the last
 *   value whose hash fell on it, so its cost is bounded whatever the tree.
 *
 * Both are touched with the lock held. */
#define SHARED_BITS 12
typedef struct {
    int64_t sec;
    long nsec;
    PyObject *value;
} SharedInt;
static SharedInt shared_times[1 << SHARED_BITS];
static SharedInt shared_sizes[1 << SHARED_BITS];

/* ``sec * 10**9 + nsec`` (``sec`` alone for the sizes' table), from its slot when the slot
 * holds it already. A new reference, or NULL with an exception set. */
static PyObject *
shared_int(SharedInt *table, int64_t sec, long nsec)
{
    uint64_t h = (((uint64_t)sec * UINT64_C(1000000007)) ^ (uint64_t)nsec) *
                 UINT64_C(0x9E3779B97F4A7C15);
    SharedInt *slot = &table[h >> (64 - SHARED_BITS)];
    if (slot->value != NULL && slot->sec == sec && slot->nsec == nsec) {
        return Py_NewRef(slot->value);
    }
    PyObject *value = table == shared_sizes ? PyLong_FromLongLong(sec)
                                            : time_ns_object(sec, nsec);
    if (value != NULL) {
        Py_XSETREF(slot->value, Py_NewRef(value));
        slot->sec = sec;
        slot->nsec = nsec;
    }
    return value;
}

/* True when the integer ``value`` equals ``expected``. */
static int
int_is(PyObject *value, int64_t expected)
{
    int overflow;
    long long got = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (got == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return !overflow && got == expected;
}

/* A peer's meta for ``rel`` (borrowed), or NULL if none holds one. -1 on error. */
static int
peer_meta(PyObject *peers, PyObject *rel, PyObject **found)
{
    *found = NULL;
    for (Py_ssize_t i = 0; peers != NULL && i < PyTuple_GET_SIZE(peers); i++) {
        PyObject *peer = PyTuple_GET_ITEM(peers, i);
        if (!PyDict_Check(peer)) {
            continue;
        }
        PyObject *meta = PyDict_GetItemWithError(peer, rel);
        if (meta == NULL && PyErr_Occurred()) {
            return -1;
        }
        if (meta != NULL && Py_IS_TYPE(meta, meta_type)) {
            *found = meta;
            return 0;
        }
    }
    return 0;
}

/* The file's meta, sharing what it can with ``peer`` (another location's meta of the same
 * path, or NULL) and the tables above. */
static PyObject *
new_meta(const Entry *e, PyObject *peer)
{
    int64_t ns;
    int exact_ns = !__builtin_mul_overflow(e->mtime_sec, (int64_t)1000000000, &ns) &&
                   !__builtin_add_overflow(ns, (int64_t)e->mtime_nsec, &ns);
    PyObject *size = NULL, *mtime = NULL;
    if (peer != NULL) {
        if (int_is(PyTuple_GET_ITEM(peer, 0), e->size)) {
            size = Py_NewRef(PyTuple_GET_ITEM(peer, 0));
        }
        if (exact_ns && int_is(PyTuple_GET_ITEM(peer, 1), ns)) {
            mtime = Py_NewRef(PyTuple_GET_ITEM(peer, 1));
        }
        if (size != NULL && mtime != NULL && int_is(PyTuple_GET_ITEM(peer, 2), (int64_t)e->tag)) {
            Py_DECREF(size);
            Py_DECREF(mtime);
            return Py_NewRef(peer); /* the same file (a hard link between the locations) */
        }
    }
    if (size == NULL) {
        size = shared_int(shared_sizes, e->size, 0);
    }
    if (mtime == NULL) {
        mtime = shared_int(shared_times, e->mtime_sec, e->mtime_nsec);
    }
    PyObject *tag = PyLong_FromUnsignedLongLong(e->tag);
    PyObject *meta = NULL;
    if (size && mtime && tag) {
        /* What tuple.__new__(FileMeta, (size, mtime, tag)) builds, but without the spare
         * item PyType_GenericAlloc adds to every object it allocates: a meta then fits
         * CPython's 64-byte size class instead of the 80-byte one. Where the type has more
         * than a tuple's fields, it gets tp_alloc (set by configure()). Untracked either way:
         * three integers cannot be part of a cycle, so the collector need not walk it. */
        meta = lean_meta ? (PyObject *)PyObject_GC_NewVar(PyTupleObject, meta_type, 3)
                         : meta_type->tp_alloc(meta_type, 3);
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
    PyObject_GC_UnTrack(meta);
    return meta;
}

/* Add one listed entry to the caller's collections (the lock is held). 0, or -1 on error. */
static int
add_entry(const Listed *out, const Entry *e, PyObject *base, PyObject *files, PyObject *links,
          PyObject *hard_links, PyObject *subfolders, PyObject *temps, PyObject *peers)
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
    PyObject *peer;
    PyObject *meta = peer_meta(peers, rel, &peer) == 0 ? new_meta(e, peer) : NULL;
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
"list_folder(fd, base, at_root, files, links, hard_links, peers=()) -> (subfolders, temps)\n\n"
"List the open folder ``fd`` (relative path ``base``, ending in '/' unless empty) as\n"
"TreeScan._list does: each regular file goes into ``files`` as base + name -> FileMeta\n"
"(interned), into ``hard_links`` as (dev, ino) if it has several names; each symbolic link\n"
"into ``links``. Returns the subfolders' names and the temp files' names (for the caller to\n"
"remove). Raises OSError as os.scandir and os.DirEntry.stat would. ``peers``: other scans'\n"
"listings, whose equal integers (or equal metas) a meta takes instead of new ones.");

static PyObject *
list_folder(PyObject *module, PyObject *args)
{
    int fd, at_root;
    PyObject *base, *files, *links, *hard_links, *peers = NULL;
    if (!PyArg_ParseTuple(args, "iUpO!O!O!|O!:list_folder", &fd, &base, &at_root, &PyDict_Type,
                          &files, &PySet_Type, &links, &PyDict_Type, &hard_links, &PyTuple_Type,
                          &peers)) {
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
                      temps, peers) != 0) {
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
    lean_meta = meta_type->tp_basicsize == PyTuple_Type.tp_basicsize &&
                meta_type->tp_itemsize == PyTuple_Type.tp_itemsize;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(file_system_type_doc,
"file_system_type(path) -> int | None\n\n"
"``statfs(path).f_type`` (its low 32 bits, as linux/magic.h lists them), or None if statfs\n"
"fails. What app.locations.folder.mounts asks of every folder it opens, without ctypes.");

static PyObject *
file_system_type(PyObject *module, PyObject *arg)
{
    PyObject *path;
    if (!PyUnicode_FSConverter(arg, &path)) {
        return NULL;
    }
    struct statfs st;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = statfs(PyBytes_AS_STRING(path), &st);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    if (rc != 0) {
        Py_RETURN_NONE;
    }
    return PyLong_FromUnsignedLong((unsigned long)st.f_type & 0xFFFFFFFFUL);
}

static PyMethodDef methods[] = {
    {"list_folder", list_folder, METH_VARARGS, list_folder_doc},
    {"file_system_type", file_system_type, METH_O, file_system_type_doc},
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
