/* One request written and the first read of its answer, in one call on a socket's descriptor.
 *
 * The blocking client's quick path (kyototycoon/client/inline.py) writes a request and reads once;
 * through Python's socket methods that is two method calls, two releases of the GIL and a
 * 16 KiB bytes object allocated for every read, then shrunk. Here it is one call, one release,
 * and a small answer (the usual get or set) is read on the stack and copied once at its size.
 *
 * Only I/O lives here: what the bytes mean is the sans-IO core's and the generated codecs'.
 * Hand-written (not generated: it holds nothing of the protocol); built beside the generated C
 * loops by kyototycoon.codegen.generate.compile_all, optional like them (transport.py uses
 * Python's socket methods when it is missing). POSIX only: Windows has no such descriptor.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* macOS: Python ignores SIGPIPE itself */
#endif

/* Raised in Python when transport.py's copy of this number differs: a stale build, never used. */
#define SOCKIO_ABI 1

/* An answer at most this long (any get or set) is read on the stack, then copied at its size. */
#define STACK_READ 4096

/* The OSError for errno ``err``, as the socket module raises it (BlockingIOError for the kernel's
 * receive timeout, ConnectionResetError...). */
static PyObject *
raise_errno(int err)
{
    errno = err;
    return PyErr_SetFromErrno(PyExc_OSError);
}

/* Write all of buf, retrying interrupted writes as PEP 475 asks (a signal handler that raises
 * stops it). Returns 0, or -1 with an exception set. */
static int
send_all(int fd, const char *buf, Py_ssize_t len)
{
    while (len > 0) {
        ssize_t n;
        int err = 0;
        Py_BEGIN_ALLOW_THREADS
        n = send(fd, buf, (size_t)len, MSG_NOSIGNAL);
        if (n < 0)
            err = errno;
        Py_END_ALLOW_THREADS
        if (n < 0) {
            if (err == EINTR) {
                if (PyErr_CheckSignals() < 0)
                    return -1;
                continue;
            }
            raise_errno(err);
            return -1;
        }
        buf += n;
        len -= n;
    }
    return 0;
}

/* recv() with the GIL released, retried after EINTR; the count, or -1 with errno in *err. */
static ssize_t
recv_once(int fd, char *buf, size_t len, int flags, int *err)
{
    ssize_t n;
    Py_BEGIN_ALLOW_THREADS
    n = recv(fd, buf, len, flags);
    if (n < 0)
        *err = errno;
    Py_END_ALLOW_THREADS
    return n;
}

PyDoc_STRVAR(sendrecv_doc,
"sendrecv(fd, request, size, /) -> bytes\n\n"
"Write all of ``request`` on the blocking socket ``fd``, then read once, at most ``size``\n"
"bytes, as ``sock.sendall(request); sock.recv(size)`` would (b\"\": the peer closed).\n"
"A failure raises the OSError the socket module would raise.");

static PyObject *
sendrecv(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "sendrecv() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    long fd = PyLong_AsLong(args[0]);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    if (fd < 0 || fd > 0x7fffffffL) {
        PyErr_Format(PyExc_ValueError, "fd must be a descriptor, not %ld", fd);
        return NULL;
    }
    Py_ssize_t size = PyLong_AsSsize_t(args[2]);
    if (size == -1 && PyErr_Occurred())
        return NULL;
    if (size <= 0) {
        PyErr_Format(PyExc_ValueError, "size must be positive, not %zd", size);
        return NULL;
    }
    Py_buffer request;
    if (PyObject_GetBuffer(args[1], &request, PyBUF_SIMPLE) < 0)
        return NULL;
    int failed = send_all((int)fd, (const char *)request.buf, request.len);
    PyBuffer_Release(&request);
    if (failed)
        return NULL;

    char stack[STACK_READ];
    size_t first = size < STACK_READ ? (size_t)size : STACK_READ;
    ssize_t n;
    int err = 0;
    for (;;) {
        n = recv_once((int)fd, stack, first, 0, &err);
        if (n >= 0)
            break;
        if (err != EINTR)
            return raise_errno(err);
        if (PyErr_CheckSignals() < 0)
            return NULL;
    }
    if ((size_t)n < first || first == (size_t)size)
        return PyBytes_FromStringAndSize(stack, n);

    /* The stack is full and size allows more: take what else has come, without waiting (a
     * second blocking read could wait for bytes that never come: the answer may be exactly
     * this long). recv() itself gives no more promise than "some bytes". */
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL)
        return NULL;
    char *dst = PyBytes_AS_STRING(out);
    memcpy(dst, stack, (size_t)n);
    Py_ssize_t have = n;
    for (;;) {
        n = recv_once((int)fd, dst + have, (size_t)(size - have), MSG_DONTWAIT, &err);
        if (n >= 0) {
            have += n;
            break;
        }
        if (err == EAGAIN || err == EWOULDBLOCK)
            break;
        if (err != EINTR) {
            Py_DECREF(out);
            return raise_errno(err);
        }
        if (PyErr_CheckSignals() < 0) {
            Py_DECREF(out);
            return NULL;
        }
    }
    if (have < size && _PyBytes_Resize(&out, have) < 0)
        return NULL;
    return out;
}

static PyMethodDef sockio_methods[] = {
    {"sendrecv", (PyCFunction)(void (*)(void))sendrecv, METH_FASTCALL, sendrecv_doc},
    {NULL, NULL, 0, NULL},
};

static int
sockio_exec(PyObject *module)
{
    return PyModule_AddIntConstant(module, "ABI", SOCKIO_ABI);
}

static PyModuleDef_Slot sockio_slots[] = {
    {Py_mod_exec, (void *)sockio_exec},
    {0, NULL},
};

static struct PyModuleDef sockio_module = {
    PyModuleDef_HEAD_INIT,
    "_sockio",
    "One write and one read on a socket descriptor in one call (the blocking client's quick path).",
    0,
    sockio_methods,
    sockio_slots,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__sockio(void)
{
    return PyModuleDef_Init(&sockio_module);
}
