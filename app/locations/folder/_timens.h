/* A file time in nanoseconds as os.stat computes it: seconds * 10**9 + nanoseconds, on
 * Python's unbounded integers, because a time past the year 2262 does not fit in 64 bits.
 * Shared by the folder's C speedups (_scan.c, _copy.c), which must report the same metas as
 * the Python code they stand in for. */
#ifndef FILESYNC_TIMENS_H
#define FILESYNC_TIMENS_H

#include <Python.h>
#include <stdint.h>

static PyObject *
time_ns_object(int64_t sec, long nsec)
{
    int64_t ns;
    if (!__builtin_mul_overflow(sec, (int64_t)1000000000, &ns) &&
        !__builtin_add_overflow(ns, (int64_t)nsec, &ns)) {
        return PyLong_FromLongLong(ns);
    }
    PyObject *big_sec = PyLong_FromLongLong(sec);
    PyObject *billion = PyLong_FromLong(1000000000L);
    PyObject *big_nsec = PyLong_FromLong(nsec);
    PyObject *scaled = (big_sec && billion) ? PyNumber_Multiply(big_sec, billion) : NULL;
    PyObject *result = (scaled && big_nsec) ? PyNumber_Add(scaled, big_nsec) : NULL;
    Py_XDECREF(big_sec);
    Py_XDECREF(billion);
    Py_XDECREF(big_nsec);
    Py_XDECREF(scaled);
    return result;
}

#endif
