/* server.h — `knnlm serve`: HTTP (libmicrohttpd) in front of a loaded model, datastore and index.
 *
 * Endpoints: GET /health, POST /v1/analyze (analyze.h), POST /v1/completions (OpenAI's completions shape,
 * completions.h), GET / (the viewer page, embedded in the binary).
 *
 * Concurrency: one thread per connection (libmicrohttpd's), but at most `slots` requests compute at once, each
 * with threads / slots OpenMP threads, so that the cores are never oversubscribed; up to `queue` more wait for
 * a slot, and a request beyond that is answered 503 at once. A client that goes away mid-stream frees its slot.
 * SIGTERM or SIGINT stops accepting connections, lets the requests in flight finish (drain), and returns. */
#ifndef KN_SERVER_H
#define KN_SERVER_H

#include "serve/analyze.h"

#include <stddef.h>

typedef struct {
    const char *host;          /* the address to listen on: "127.0.0.1" (default), "::1", "0.0.0.0", ... */
    int port;                  /* 0: any free port (the one chosen is printed) */
    int slots;                 /* requests computing at once, >= 1 */
    int queue;                 /* requests waiting for a slot, >= 0 */
    int threads;               /* OpenMP threads in all (divided among the slots) */
    size_t max_body;           /* request bodies larger than this get 413 */
    int max_tokens;            /* the largest max_tokens a completion may ask for */
    AnalyzeModel model;
    /* what GET /health reports */
    const char *model_dir, *dstore_dir, *index_path, *index_desc;
} ServerConfig;

/* Serves until SIGTERM or SIGINT (which the caller must have blocked in every thread: the server waits for
 * them with sigwait), then drains and returns KN_OK. Prints "listening on http://HOST:PORT" on stderr once
 * it accepts connections. KN_EINVAL / KN_EIO when it cannot listen (the message names the address). */
int server_run(const ServerConfig *cfg);

#endif
