/* The state index's rows into the engine's in-memory mirror, in C.
 *
 * Optional speedup of app.engine.index.StateIndex.load, whose Python loop stays the fallback
 * and the reference (tests/test_scan_speedup.py compares the two). A restart loads one row a
 * file a location; in Python each row costs a loop iteration, a call to intern and a meta
 * built from three new references, with the interpreter lock held beside the scans that need
 * it too. Here the row's own integers go into the meta, and the meta is left out of the cycle
 * collector (a tuple of integers cannot be part of a cycle; the collector would find that out
 * itself, after walking it once).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

PyDoc_STRVAR(mirror_into_doc,
"mirror_into(mirror, rows, meta_type)\n\n"
"Add each (path, size, mtime_ns, tag) row to ``mirror`` as intern(path) -> meta_type(size,\n"
"mtime_ns, tag); a path stored as bytes (not UTF-8) is decoded with surrogateescape.");

static PyObject *
mirror_into(PyObject *module, PyObject *args)
{
    PyObject *mirror, *rows;
    PyTypeObject *meta_type;
    if (!PyArg_ParseTuple(args, "O!O!O!:mirror_into", &PyDict_Type, &mirror, &PyList_Type, &rows,
                          &PyType_Type, &meta_type)) {
        return NULL;
    }
    if (!PyType_IsSubtype(meta_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "meta_type must be a tuple subclass");
        return NULL;
    }
    int lean = meta_type->tp_basicsize == PyTuple_Type.tp_basicsize &&
               meta_type->tp_itemsize == PyTuple_Type.tp_itemsize;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(rows); i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != 4) {
            PyErr_SetString(PyExc_TypeError, "a row must be (path, size, mtime_ns, tag)");
            return NULL;
        }
        PyObject *path = PyTuple_GET_ITEM(row, 0);
        if (PyUnicode_CheckExact(path)) {
            Py_INCREF(path);
        }
        else if (PyBytes_Check(path)) {
            path = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(path), PyBytes_GET_SIZE(path),
                                        "surrogateescape");
            if (path == NULL) {
                return NULL;
            }
        }
        else {
            PyErr_SetString(PyExc_TypeError, "a row's path must be str or bytes");
            return NULL;
        }
        PyUnicode_InternInPlace(&path);
        /* Without the spare item PyType_GenericAlloc adds: 64 bytes instead of 80 a meta,
         * where meta_type adds no field to a tuple's (as app.locations.folder._scan does). */
        PyObject *meta = lean ? (PyObject *)PyObject_GC_NewVar(PyTupleObject, meta_type, 3)
                              : meta_type->tp_alloc(meta_type, 3);
        if (meta == NULL) {
            Py_DECREF(path);
            return NULL;
        }
        for (Py_ssize_t k = 0; k < 3; k++) {
            PyObject *value = PyTuple_GET_ITEM(row, k + 1);
            Py_INCREF(value);
            PyTuple_SET_ITEM(meta, k, value);
        }
        PyObject_GC_UnTrack(meta);
        int failed = PyDict_SetItem(mirror, path, meta);
        Py_DECREF(path);
        Py_DECREF(meta);
        if (failed) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"mirror_into", mirror_into, METH_VARARGS, mirror_into_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "app.engine._mirror",
    "The state index's rows into the engine's mirror, in C (see app.engine.index).",
    -1,
    methods,
};

PyMODINIT_FUNC
PyInit__mirror(void)
{
    return PyModule_Create(&module_def);
}
