/* The state index's rows of one location, read from SQLite in C (see app.engine.index).
 *
 * Optional speedup of StateIndex.load, whose Python path (sqlite3 and _mirror.c, or the plain
 * loop) stays the fallback and the reference (tests/test_scan_speedup.py compares them). The
 * sqlite3 module builds a tuple of four new objects a row and hands the interpreter lock back
 * and forth around every step: 0.5 us a row, five times what SQLite itself needs to read it.
 * Here a reader connection of its own steps through the rows in chunks with the lock released,
 * into a C buffer, then builds each row's interned path and meta directly, as _mirror.c does.
 *
 * The connection is this library's, so it must be the very SQLite the sqlite3 module runs:
 * two copies of SQLite in one process do not see each other's POSIX locks, and closing one's
 * descriptor drops the other's. same_library() checks that, and index.py uses this module only
 * when it holds. It reads what is committed only: index.py asks it only while nothing written
 * waits for a commit.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Rows stepped through a chunk with the lock released: bounded memory, few lock hand-overs. */
#define CHUNK 8192

typedef struct {
    size_t path; /* offset of the path's bytes in the text buffer */
    size_t len;
    int blob; /* stored as a BLOB: the file system's bytes of a name that is not UTF-8 */
    sqlite3_int64 size, mtime_ns, tag;
} Row;

typedef struct {
    Row rows[CHUNK];
    size_t count;
    char *text;
    size_t used, room;
} Chunk;

PyDoc_STRVAR(same_library_doc,
"same_library(sqlite3_module_file) -> bool\n\n"
"True when the sqlite3 module built from ``sqlite3_module_file`` (``_sqlite3.__file__``)\n"
"runs the same SQLite library, loaded once, as this module.");

static PyObject *
same_library(PyObject *module, PyObject *arg)
{
    PyObject *path;
    if (!PyUnicode_FSConverter(arg, &path)) {
        return NULL;
    }
    void *theirs = NULL;
    void *handle = dlopen(PyBytes_AS_STRING(path), RTLD_LAZY | RTLD_NOLOAD);
    Py_DECREF(path);
    if (handle != NULL) {
        theirs = dlsym(handle, "sqlite3_libversion");
        dlclose(handle);
    }
    return PyBool_FromLong(theirs != NULL && theirs == (void *)&sqlite3_libversion);
}

/* Step through up to CHUNK rows into ``chunk`` (the lock is released). SQLITE_ROW while rows
 * remain, SQLITE_DONE at the end, else an error code (SQLITE_MISMATCH: a value of a type the
 * schema does not allow, SQLITE_NOMEM). */
static int
step_chunk(sqlite3_stmt *stmt, Chunk *chunk)
{
    chunk->count = 0;
    chunk->used = 0;
    while (chunk->count < CHUNK) {
        int rc = sqlite3_step(stmt);
        if (rc != SQLITE_ROW) {
            return rc;
        }
        int type = sqlite3_column_type(stmt, 0);
        if ((type != SQLITE_TEXT && type != SQLITE_BLOB) ||
            sqlite3_column_type(stmt, 1) != SQLITE_INTEGER ||
            sqlite3_column_type(stmt, 2) != SQLITE_INTEGER ||
            sqlite3_column_type(stmt, 3) != SQLITE_INTEGER) {
            return SQLITE_MISMATCH;
        }
        const void *bytes = type == SQLITE_TEXT ? (const void *)sqlite3_column_text(stmt, 0)
                                                : sqlite3_column_blob(stmt, 0);
        size_t len = (size_t)sqlite3_column_bytes(stmt, 0);
        if (bytes == NULL && len != 0) {
            return SQLITE_NOMEM;
        }
        if (chunk->used + len > chunk->room) {
            size_t room = chunk->room ? chunk->room * 2 : 256 * 1024;
            while (chunk->used + len > room) {
                room *= 2;
            }
            char *text = realloc(chunk->text, room);
            if (text == NULL) {
                return SQLITE_NOMEM;
            }
            chunk->text = text;
            chunk->room = room;
        }
        Row *row = &chunk->rows[chunk->count++];
        row->path = chunk->used;
        row->len = len;
        row->blob = type == SQLITE_BLOB;
        if (len) {
            memcpy(chunk->text + chunk->used, bytes, len);
        }
        chunk->used += len;
        row->size = sqlite3_column_int64(stmt, 1);
        row->mtime_ns = sqlite3_column_int64(stmt, 2);
        row->tag = sqlite3_column_int64(stmt, 3);
    }
    return SQLITE_ROW;
}

/* Add the chunk's rows to ``mirror`` (the lock is held). 0, or -1 with an exception set. */
static int
mirror_chunk(const Chunk *chunk, PyObject *mirror, PyTypeObject *meta_type, int lean)
{
    for (size_t i = 0; i < chunk->count; i++) {
        const Row *row = &chunk->rows[i];
        PyObject *path = PyUnicode_DecodeUTF8(chunk->text + row->path, (Py_ssize_t)row->len,
                                              row->blob ? "surrogateescape" : NULL);
        if (path == NULL) {
            return -1;
        }
        PyUnicode_InternInPlace(&path);
        /* As _mirror.c: no spare item, and out of the cycle collector. */
        PyObject *meta = lean ? (PyObject *)PyObject_GC_NewVar(PyTupleObject, meta_type, 3)
                              : meta_type->tp_alloc(meta_type, 3);
        if (meta == NULL) {
            Py_DECREF(path);
            return -1;
        }
        PyObject_GC_UnTrack(meta);
        sqlite3_int64 values[3] = {row->size, row->mtime_ns, row->tag};
        for (Py_ssize_t k = 0; k < 3; k++) {
            PyObject *value = PyLong_FromLongLong(values[k]);
            if (value == NULL) {
                Py_DECREF(path);
                Py_DECREF(meta); /* its unset items are NULL, which dealloc skips */
                return -1;
            }
            PyTuple_SET_ITEM(meta, k, value);
        }
        int failed = PyDict_SetItem(mirror, path, meta);
        Py_DECREF(path);
        Py_DECREF(meta);
        if (failed) {
            return -1;
        }
    }
    return 0;
}

PyDoc_STRVAR(load_into_doc,
"load_into(database, location, mirror, meta_type)\n\n"
"Add every committed row of ``location`` (str, or bytes as stored for a name that is not\n"
"UTF-8) in the state index file ``database`` to ``mirror`` as intern(path) ->\n"
"meta_type(size, mtime_ns, tag), as StateIndex.load does. A failure of SQLite (or a value\n"
"the schema does not allow) raises OSError, a path stored as TEXT that is not UTF-8\n"
"UnicodeDecodeError; ``mirror`` may then hold some of the rows.");

static PyObject *
load_into(PyObject *module, PyObject *args)
{
    PyObject *database, *location, *mirror;
    PyTypeObject *meta_type;
    if (!PyArg_ParseTuple(args, "O&OO!O!:load_into", PyUnicode_FSConverter, &database,
                          &location, &PyDict_Type, &mirror, &PyType_Type, &meta_type)) {
        return NULL;
    }
    const char *key;
    Py_ssize_t key_len;
    int key_blob = PyBytes_Check(location);
    if (key_blob) {
        key = PyBytes_AS_STRING(location);
        key_len = PyBytes_GET_SIZE(location);
    }
    else if (PyUnicode_Check(location)) {
        key = PyUnicode_AsUTF8AndSize(location, &key_len);
    }
    else {
        PyErr_SetString(PyExc_TypeError, "location must be str or bytes");
        key = NULL;
    }
    if (key == NULL || !PyType_IsSubtype(meta_type, &PyTuple_Type)) {
        if (key != NULL) {
            PyErr_SetString(PyExc_TypeError, "meta_type must be a tuple subclass");
        }
        Py_DECREF(database);
        return NULL;
    }
    int lean = meta_type->tp_basicsize == PyTuple_Type.tp_basicsize &&
               meta_type->tp_itemsize == PyTuple_Type.tp_itemsize;
    Chunk *chunk = calloc(1, sizeof(Chunk));
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    int rc = chunk == NULL ? SQLITE_NOMEM : SQLITE_OK;
    int failed = 0;
    if (rc == SQLITE_OK) {
        Py_BEGIN_ALLOW_THREADS
        rc = sqlite3_open_v2(PyBytes_AS_STRING(database), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_busy_timeout(db, 5000);
            rc = sqlite3_prepare_v2(
                db, "SELECT path, size, mtime_ns, tag FROM files WHERE location = ?", -1,
                &stmt, NULL);
        }
        if (rc == SQLITE_OK) {
            rc = key_blob ? sqlite3_bind_blob(stmt, 1, key, (int)key_len, SQLITE_TRANSIENT)
                          : sqlite3_bind_text(stmt, 1, key, (int)key_len, SQLITE_TRANSIENT);
        }
        Py_END_ALLOW_THREADS
    }
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        Py_BEGIN_ALLOW_THREADS
        rc = step_chunk(stmt, chunk);
        Py_END_ALLOW_THREADS
        if ((rc == SQLITE_ROW || rc == SQLITE_DONE) &&
            mirror_chunk(chunk, mirror, meta_type, lean) != 0) {
            failed = 1;
            break;
        }
    }
    if (!failed && rc != SQLITE_DONE) {
        const char *why = db != NULL && rc != SQLITE_MISMATCH ? sqlite3_errmsg(db)
                                                              : sqlite3_errstr(rc);
        PyErr_Format(PyExc_OSError, "reading the state index's rows: %s", why);
        failed = 1;
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    if (chunk != NULL) {
        free(chunk->text);
        free(chunk);
    }
    Py_DECREF(database);
    if (failed) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"same_library", same_library, METH_O, same_library_doc},
    {"load_into", load_into, METH_VARARGS, load_into_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "app.engine._rows",
    "The state index's rows of one location, read from SQLite in C (see app.engine.index).",
    -1,
    methods,
};

PyMODINIT_FUNC
PyInit__rows(void)
{
    return PyModule_Create(&module_def);
}
