/* endpoint.h — what the server's endpoints (server.c, completions.c) share: compute slots and JSON answers.
 * Internal to src/serve. */
#ifndef KN_ENDPOINT_H
#define KN_ENDPOINT_H

#include "serve/server.h"

#include <microhttpd.h>

typedef struct Server Server;

/* Work for a compute slot: the server has cfg->slots worker threads, each with its share of the cores as its
 * OpenMP threads, that run the jobs in the order they were submitted. Computing only there keeps the threads
 * that OpenMP, OpenBLAS and malloc keep per thread bounded by the slots, whatever the number of connections.
 * The library's error message is per thread: a job copies what its caller needs. */
typedef struct ServerJob {
    void (*run)(void *arg);
    void *arg;
    int done;                 /* set once run has returned (under the server's lock) */
    struct ServerJob *next;
} ServerJob;

/* Queues the job (the caller keeps it alive until server_wait returns). */
void server_submit(Server *s, ServerJob *job);
/* Returns once the job has run. */
void server_wait(Server *s, ServerJob *job);
/* Both: runs run(arg) on a worker and returns when it is done. */
void server_compute(Server *s, void (*run)(void *arg), void *arg);
const ServerConfig *server_config(const Server *s);

/* {"error": message} with the status. */
enum MHD_Result server_send_error(struct MHD_Connection *c, unsigned status, const char *message);
/* A JSON answer; takes ownership of json (malloc'd; NULL: out of memory, the connection is closed). */
enum MHD_Result server_send_json(struct MHD_Connection *c, unsigned status, char *json);

#endif
