/* A folder's group of copies in C: temp files written and renamed into place in bulk.
 *
 * Optional speedup of app.locations.folder.batch, whose pure-Python steps stay the reference
 * and the fallback where this module did not build. What is gained: the ~10 system calls of
 * each small copy (open the source, create the temp file, read, write, set the time, close
 * both) and the rename of a new file run with the interpreter lock released, for many files
 * a call, instead of handing the lock back and forth around every call while the engine
 * thread plans the next group. A stage call's files are shared by up to four threads of its
 * own (pthreads taking the next file in turn), so two copy threads no longer each win the
 * lock back after every few files: while the engine thread plans, each of those waits could
 * last its whole switch interval.
 *
 * Nothing here decides anything: a file that fails any step is reported with its errno, its
 * temp file already removed, and the caller does it again on the Python path, which raises the
 * error a user sees (file vanished, a link in the way, disk full, a file saved meanwhile).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "_timens.h"

#define BUFFER_SIZE (256 * 1024)
/* The most a copy here takes (fastcopy.FAST_COPY_MAX is this module's COPY_MAX): a source that
 * grew past it since it was planned is left to the Python steps, which check for a stop
 * between chunks, where this loop runs with the lock released and cannot be stopped. */
#define COPY_MAX (1 << 20)
/* The most threads one stage call copies with (batch.COPY_THREADS asks for two). */
#define MAX_THREADS 4

typedef struct {
    int src_dir;
    PyObject *src_name; /* bytes (PyUnicode_FSConverter's), owned */
    int dst_dir;
    PyObject *tmp_name; /* likewise */
    long long mtime_ns;
    int error;
} StageItem;

/* One stage call's work, shared by the threads that do it: each takes the next item. */
typedef struct {
    StageItem *items;
    Py_ssize_t count;
    Py_ssize_t next; /* taken with __atomic_fetch_add */
    int durable;
    int beneath;
} StageWork;

typedef struct {
    int dir;
    PyObject *tmp_name; /* bytes (PyUnicode_FSConverter's), owned */
    PyObject *name;     /* likewise */
    int error;
    struct stat st;
} LandItem;

static int
write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Copy the open source into the open temp file, stamp its time, fsync it if durable. */
static int
fill(int src, int dst, char *buffer, long long mtime_ns, int durable)
{
    long long copied = 0;
    for (;;) {
        ssize_t n = read(src, buffer, BUFFER_SIZE);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno;
        }
        if (n == 0) {
            break;
        }
        copied += n;
        if (copied > COPY_MAX) {
            return EFBIG;
        }
        int err = write_all(dst, buffer, (size_t)n);
        if (err) {
            return err;
        }
    }
    struct timespec times[2];
    times[0].tv_sec = (time_t)(mtime_ns / 1000000000LL);
    times[0].tv_nsec = (long)(mtime_ns % 1000000000LL);
    if (times[0].tv_nsec < 0) { /* a time before 1970: floor, as Python's os.utime does */
        times[0].tv_sec -= 1;
        times[0].tv_nsec += 1000000000L;
    }
    times[1] = times[0];
    if (futimens(dst, times) != 0) {
        return errno;
    }
    if (durable && fsync(dst) != 0) {
        return errno;
    }
    return 0;
}

/* Open ``name``, a relative path beneath the folder ``dir``, for reading, refusing every
 * symbolic link on the way and at the end, and any way out of ``dir`` (ELOOP, EXDEV):
 * openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, one system call where walking the
 * folders one by one took one open and one close each. ENOSYS where the kernel (before 5.6)
 * or a sandbox does not offer it. */
static int
open_beneath(int dir, const char *name, int flags)
{
#if defined(__linux__) && defined(SYS_openat2)
    struct {
        unsigned long long flags, mode, resolve;
    } how = {(unsigned long long)flags, 0, 0x08 /* RESOLVE_BENEATH */ | 0x04 /* NO_SYMLINKS */};
    return (int)syscall(SYS_openat2, dir, name, &how, sizeof how);
#else
    (void)dir;
    (void)name;
    (void)flags;
    errno = ENOSYS;
    return -1;
#endif
}

static int
stage_one(StageItem *item, char *buffer, int durable, int beneath)
{
    const char *src_name = PyBytes_AS_STRING(item->src_name);
    const char *tmp_name = PyBytes_AS_STRING(item->tmp_name);
    /* O_NONBLOCK: a fifo swapped in at that name must not block this thread on its open */
    int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;
    int src = beneath ? open_beneath(item->src_dir, src_name, flags)
                      : openat(item->src_dir, src_name, flags);
    if (src < 0) {
        return errno;
    }
    struct stat st;
    int err = fstat(src, &st) != 0 ? errno : 0;
    if (err == 0 && !S_ISREG(st.st_mode)) { /* a device or fifo now at that name */
        err = EINVAL;
    }
    if (err) {
        close(src);
        return err;
    }
    flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    int dst = openat(item->dst_dir, tmp_name, flags, 0666);
    if (dst < 0) {
        err = errno;
        close(src);
        return err;
    }
    err = fill(src, dst, buffer, item->mtime_ns, durable);
    if (close(dst) != 0 && err == 0) {
        err = errno;
    }
    close(src);
    if (err) {
        unlinkat(item->dst_dir, tmp_name, 0);
    }
    return err;
}

/* A thread of a stage call: copy the items not yet taken until none is left. */
static void *
stage_some(void *arg)
{
    StageWork *work = arg;
    char *buffer = malloc(BUFFER_SIZE);
    for (;;) {
        Py_ssize_t i = __atomic_fetch_add(&work->next, 1, __ATOMIC_RELAXED);
        if (i >= work->count) {
            break;
        }
        work->items[i].error = buffer == NULL ? ENOMEM
                                              : stage_one(&work->items[i], buffer,
                                                          work->durable, work->beneath);
    }
    free(buffer);
    return NULL;
}

/* Take ``seq`` as a tuple (a list another thread could change while the lock is released). */
static PyObject *
as_tuple(PyObject *seq)
{
    if (!PyList_Check(seq) && !PyTuple_Check(seq)) {
        PyErr_SetString(PyExc_TypeError, "expected a list of tuples");
        return NULL;
    }
    return PySequence_Tuple(seq);
}

static PyObject *
stage(PyObject *self, PyObject *args)
{
    PyObject *seq;
    int durable;
    int beneath = 0;
    int threads = 1;
    if (!PyArg_ParseTuple(args, "Op|pi:stage", &seq, &durable, &beneath, &threads)) {
        return NULL;
    }
    PyObject *items = as_tuple(seq);
    if (items == NULL) {
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(items);
    StageItem *work = PyMem_Calloc(count ? (size_t)count : 1, sizeof(StageItem));
    PyObject *result = NULL;
    if (work == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        StageItem *w = &work[i];
        /* str names are encoded here as os.fsencode would (no call into Python per name) */
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(items, i), "iO&iO&L:stage item", &w->src_dir,
                              PyUnicode_FSConverter, &w->src_name, &w->dst_dir,
                              PyUnicode_FSConverter, &w->tmp_name, &w->mtime_ns)) {
            goto done;
        }
    }
    StageWork shared = {work, count, 0, durable, beneath};
    if (threads < 1) {
        threads = 1;
    }
    if (threads > MAX_THREADS) {
        threads = MAX_THREADS;
    }
    Py_BEGIN_ALLOW_THREADS
    pthread_t helpers[MAX_THREADS];
    int started = 0;
    /* a helper that cannot start leaves its share to the others */
    while (started < threads - 1 && (Py_ssize_t)started + 1 < count
           && pthread_create(&helpers[started], NULL, stage_some, &shared) == 0) {
        started++;
    }
    stage_some(&shared);
    for (int t = 0; t < started; t++) {
        pthread_join(helpers[t], NULL);
    }
    Py_END_ALLOW_THREADS
    result = PyList_New(count);
    if (result == NULL) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *error = PyLong_FromLong(work[i].error);
        if (error == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, i, error);
    }
done:
    if (work != NULL) {
        for (Py_ssize_t i = 0; i < count; i++) {
            Py_XDECREF(work[i].src_name);
            Py_XDECREF(work[i].tmp_name);
        }
    }
    PyMem_Free(work);
    Py_DECREF(items);
    return result;
}

/* Rename ``tmp_name`` to ``name`` only if nothing is there (else EEXIST), then lstat it.
 * Returns 0 (renamed; ``st`` holds its stat), an errno (not renamed), or minus an errno
 * (renamed, but the lstat failed for another reason than ENOENT).
 *
 * The lstat after the rename counts only if it still shows the file renamed (same device,
 * inode, size and mtime: the rename changed only its ctime); if the user saved over the name,
 * or deleted it, in between, ``st`` is the temp file's stat from just before the rename, so
 * that save or delete is seen as the user's (scan.renamed_stat is the same rule). */
static int
land_one(LandItem *item)
{
    const char *tmp_name = PyBytes_AS_STRING(item->tmp_name);
    const char *name = PyBytes_AS_STRING(item->name);
    struct stat written;
    if (fstatat(item->dir, tmp_name, &written, AT_SYMLINK_NOFOLLOW) != 0) {
        return errno;
    }
#if defined(__linux__) && defined(SYS_renameat2)
    if (syscall(SYS_renameat2, item->dir, tmp_name, item->dir, name, 1 /* NOREPLACE */) != 0) {
        return errno;
    }
#else
    return ENOSYS;
#endif
    if (fstatat(item->dir, name, &item->st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno != ENOENT) {
            return -errno;
        }
        item->st = written;
    }
    else if (item->st.st_dev != written.st_dev || item->st.st_ino != written.st_ino
             || item->st.st_size != written.st_size
             || item->st.st_mtim.tv_sec != written.st_mtim.tv_sec
             || item->st.st_mtim.tv_nsec != written.st_mtim.tv_nsec) {
        item->st = written;
    }
    return 0;
}

static PyObject *
stat_tuple(const struct stat *st)
{
    PyObject *mtime = time_ns_object(st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
    PyObject *ctime = time_ns_object(st->st_ctim.tv_sec, st->st_ctim.tv_nsec);
    PyObject *result = NULL;
    if (mtime != NULL && ctime != NULL) {
        result = Py_BuildValue("(LOKO)", (long long)st->st_size, mtime,
                               (unsigned long long)st->st_ino, ctime);
    }
    Py_XDECREF(mtime);
    Py_XDECREF(ctime);
    return result;
}

static PyObject *
land_new(PyObject *self, PyObject *args)
{
    PyObject *seq;
    if (!PyArg_ParseTuple(args, "O:land_new", &seq)) {
        return NULL;
    }
    PyObject *items = as_tuple(seq);
    if (items == NULL) {
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(items);
    LandItem *work = PyMem_Calloc(count ? (size_t)count : 1, sizeof(LandItem));
    PyObject *result = NULL;
    if (work == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        LandItem *w = &work[i];
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(items, i), "iO&O&:land_new item", &w->dir,
                              PyUnicode_FSConverter, &w->tmp_name, PyUnicode_FSConverter,
                              &w->name)) {
            goto done;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++) {
        work[i].error = land_one(&work[i]);
    }
    Py_END_ALLOW_THREADS
    result = PyList_New(count);
    if (result == NULL) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *outcome = work[i].error ? PyLong_FromLong(work[i].error)
                                          : stat_tuple(&work[i].st);
        if (outcome == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, i, outcome);
    }
done:
    if (work != NULL) {
        for (Py_ssize_t i = 0; i < count; i++) {
            Py_XDECREF(work[i].tmp_name);
            Py_XDECREF(work[i].name);
        }
    }
    PyMem_Free(work);
    Py_DECREF(items);
    return result;
}

static PyMethodDef methods[] = {
    {"stage", stage, METH_VARARGS,
     "stage(items, durable, beneath=False, threads=1) -> list of errno (0: written).\n\n"
     "Each item is (source folder fd, source name, target folder fd, temp name, mtime_ns),\n"
     "names as str or bytes: copy the source (never through a link) into a new temp file\n"
     "stamped mtime_ns, fsynced if durable. With beneath, a source name is a relative path\n"
     "beneath its folder, opened with openat2 (ENOSYS where there is none). A failed item's\n"
     "temp file is removed. Up to ``threads`` threads (at most 4) share the items."},
    {"land_new", land_new, METH_VARARGS,
     "land_new(items) -> list of (size, mtime_ns, ino, ctime_ns) or errno.\n\n"
     "Each item is (folder fd, temp name, name), names as str or bytes: rename the temp\n"
     "file to name only if no file is there (EEXIST otherwise; ENOSYS where the system\n"
     "cannot), then lstat it.\n"
     "If the name no longer shows the renamed file (deleted or saved over meanwhile), the\n"
     "temp file's stat from just before the rename. A negative errno: renamed, but the\n"
     "lstat failed."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "_copy",
    "A folder's group of copies in C (see app.locations.folder.batch).",
    -1,
    methods,
};

PyMODINIT_FUNC
PyInit__copy(void)
{
    PyObject *module = PyModule_Create(&module_def);
    if (module != NULL && PyModule_AddIntConstant(module, "COPY_MAX", COPY_MAX) != 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
