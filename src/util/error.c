/* error.c — the thread-local error message behind error.h. */
#include "util/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define KN_ERRMSG_MAX 1024

static _Thread_local char errmsg[KN_ERRMSG_MAX];

/* Messages quote file content (tensor names, zip entries, JSON strings): a control byte there must not
 * break the one-line promise of error.h, so each becomes '?'. */
static void keep_one_line(char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = '?';
}

int kn_error(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, sizeof errmsg, fmt, ap);
    va_end(ap);
    keep_one_line(errmsg);
    return code;
}

int kn_error_errno(const char *fmt, ...) {
    int saved = errno;
    int code = saved == ENOSPC || saved == EDQUOT ? KN_ENOSPC : saved == ENOENT ? KN_ENOTFOUND : KN_EIO;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(errmsg, sizeof errmsg, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof errmsg)
        snprintf(errmsg + n, sizeof errmsg - (size_t)n, ": %s", saved == ENOSPC ? "no space left on device (disk full)" : strerror(saved));
    keep_one_line(errmsg);
    errno = saved;
    return code;
}

int kn_error_wrap(int code, const char *fmt, ...) {
    char prefix[KN_ERRMSG_MAX], old[KN_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, errmsg, sizeof old);
    size_t n = strnlen(prefix, sizeof errmsg - 3);
    memcpy(errmsg, prefix, n);
    memcpy(errmsg + n, ": ", 2);
    size_t rest = sizeof errmsg - n - 3;
    size_t m = strnlen(old, rest);
    memcpy(errmsg + n + 2, old, m);
    errmsg[n + 2 + m] = '\0';
    keep_one_line(errmsg);
    return code;
}

const char *kn_errmsg(void) { return errmsg; }

