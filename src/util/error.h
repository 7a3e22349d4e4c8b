/* error.h — result codes and the one error message of the calling thread.
 *
 * Every fallible library function returns an int: KN_OK (0) on success or a negative KN_E* code, and
 * before it returns a code it records a one-line message that names the file (or the argument) and what
 * was wrong with it, e.g. "model/config.json: n_embd 100 is not a multiple of n_head 12". Only the command
 * line prints messages and exits; nothing in the library calls exit().
 *
 * The message lives in thread-local storage, so worker threads never clobber the caller's message. */
#ifndef KN_ERROR_H
#define KN_ERROR_H

enum {
    KN_OK = 0,
    KN_EIO = -1,          /* a read, write, open, mmap or fsync failed (errno says why) */
    KN_EFORMAT = -2,      /* a file's content is malformed or not what it claims to be */
    KN_ENOMEM = -3,       /* an allocation failed */
    KN_EINVAL = -4,       /* an argument or option is out of range or inconsistent */
    KN_ENOSPC = -5,       /* the disk is full; what was written before stays valid */
    KN_EMISMATCH = -6,    /* two inputs disagree (config vs weights, datastore vs index, ...) */
    KN_EINTR = -7,        /* stopped on request (SIGINT/SIGTERM) at a clean point */
    KN_ENOTFOUND = -8,    /* a file or a named item that must exist does not */
};

/* Records the printf-style message for the calling thread and returns code, so that a failure reads
 * `return kn_error(KN_EFORMAT, "%s: header is truncated", path);`. */
int kn_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* kn_error() for a failed system call: appends ": strerror(errno)" to the message and picks KN_ENOSPC for
 * ENOSPC/EDQUOT, KN_ENOTFOUND for ENOENT, KN_EIO otherwise. Returns that code. */
int kn_error_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prefixes the current message with "prefix: " (for a caller that adds context); returns code unchanged. */
int kn_error_wrap(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The calling thread's last message ("" if none). Valid until the next kn_error* call on this thread. */
const char *kn_errmsg(void);

#endif
