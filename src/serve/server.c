/* server.c — see server.h. One Request per HTTP request (libmicrohttpd's con_cls): admitted (counted against
 * slots + queue) when its headers arrive, its body gathered up to max_body, then answered on the last call of
 * the access handler. */
#include "serve/server.h"

#include "serve/completions.h"
#include "serve/endpoint.h"
#include "serve/json_args.h"
#include "util/error.h"
#include "util/version.h"

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <netdb.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* the viewer page (web/index.html), embedded by viewer_page.c */
extern const char serve_viewer_html[], serve_viewer_html_end[];

struct Server {
    const ServerConfig *cfg;
    pthread_mutex_t lock;
    pthread_cond_t changed;   /* a slot or an admission was released */
    int in_flight;            /* admitted requests: computing or waiting for a slot */
    int computing;            /* workers running a job */
    int draining;             /* SIGTERM arrived: refuse new work */
    int quit;                 /* the workers end */
    ServerJob *head, *tail;   /* jobs waiting for a worker, FIFO */
    pthread_t *workers;       /* [cfg->slots] */
    long long served, refused;
};

typedef enum { ROUTE_NONE, ROUTE_HEALTH, ROUTE_VIEWER, ROUTE_ANALYZE, ROUTE_COMPLETIONS } Route;

typedef struct {
    Route route;
    int admitted;       /* counted in in_flight (released when the request completes) */
    int too_large;      /* the body passed max_body: answered 413 once it is read */
    char *body;
    size_t len;
} Request;

static int server_admit(Server *s) {
    pthread_mutex_lock(&s->lock);
    int ok = !s->draining && s->in_flight < s->cfg->slots + s->cfg->queue;
    if (ok) s->in_flight++;
    else s->refused++;
    pthread_mutex_unlock(&s->lock);
    return ok;
}

static void server_release(Server *s) {
    pthread_mutex_lock(&s->lock);
    s->in_flight--;
    s->served++;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
}

void server_submit(Server *s, ServerJob *job) {
    job->done = 0;
    job->next = NULL;
    pthread_mutex_lock(&s->lock);
    if (s->tail) s->tail->next = job;
    else s->head = job;
    s->tail = job;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
}

void server_wait(Server *s, ServerJob *job) {
    pthread_mutex_lock(&s->lock);
    while (!job->done) pthread_cond_wait(&s->changed, &s->lock);
    pthread_mutex_unlock(&s->lock);
}

void server_compute(Server *s, void (*run)(void *arg), void *arg) {
    ServerJob job = {run, arg, 0, NULL};
    server_submit(s, &job);
    server_wait(s, &job);
}

static void *worker_main(void *arg) {
    Server *s = arg;
    /* this thread's parallel regions (our loops, OpenBLAS, Faiss) use its share of the cores */
    int t = s->cfg->threads / s->cfg->slots;
    omp_set_num_threads(t > 0 ? t : 1);
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->head && !s->quit) pthread_cond_wait(&s->changed, &s->lock);
        if (!s->head) break;
        ServerJob *job = s->head;
        s->head = job->next;
        if (!s->head) s->tail = NULL;
        s->computing++;
        pthread_mutex_unlock(&s->lock);
        job->run(job->arg);
        pthread_mutex_lock(&s->lock);
        s->computing--;
        job->done = 1;
        pthread_cond_broadcast(&s->changed);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

const ServerConfig *server_config(const Server *s) { return s->cfg; }

/* ---- responses ---- */

static enum MHD_Result send_buffer(struct MHD_Connection *c, unsigned status, const char *type, const char *data, size_t len,
                                   enum MHD_ResponseMemoryMode mode) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)data, mode);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE) MHD_add_response_header(r, "Retry-After", "1");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Takes ownership of json (malloc'd). */
static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, char *json) {
    if (!json) return MHD_NO;
    return send_buffer(c, status, "application/json; charset=utf-8", json, strlen(json), MHD_RESPMEM_MUST_FREE);
}

enum MHD_Result server_send_error(struct MHD_Connection *c, unsigned status, const char *message) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "error", message);
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return send_json(c, status, text);
}

enum MHD_Result server_send_json(struct MHD_Connection *c, unsigned status, char *json) { return send_json(c, status, json); }

static enum MHD_Result send_health(Server *s, struct MHD_Connection *c) {
    const ServerConfig *cfg = s->cfg;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", "ok");
    cJSON_AddStringToObject(j, "version", KNNLM_VERSION);
    cJSON_AddStringToObject(j, "model", cfg->model_dir);
    cJSON_AddNumberToObject(j, "n_positions", gpt2_config(cfg->model.model)->n_positions);
    if (cfg->dstore_dir) {
        cJSON_AddStringToObject(j, "datastore", cfg->dstore_dir);
        cJSON_AddNumberToObject(j, "entries", (double)dstore_size(cfg->model.ds));
        cJSON_AddStringToObject(j, "index", cfg->index_path);
        cJSON_AddStringToObject(j, "index_description", cfg->index_desc);
        cJSON_AddBoolToObject(j, "passages", cfg->model.stream != NULL);
    } else {
        cJSON_AddNullToObject(j, "datastore");
        cJSON_AddNullToObject(j, "index");
    }
    pthread_mutex_lock(&s->lock);
    cJSON_AddNumberToObject(j, "slots", cfg->slots);
    cJSON_AddNumberToObject(j, "queue", cfg->queue);
    cJSON_AddNumberToObject(j, "in_flight", s->in_flight);
    cJSON_AddNumberToObject(j, "computing", s->computing);
    pthread_mutex_unlock(&s->lock);
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return send_json(c, MHD_HTTP_OK, text);
}

static enum MHD_Result send_viewer(struct MHD_Connection *c) {
    struct MHD_Response *r = MHD_create_response_from_buffer((size_t)(serve_viewer_html_end - serve_viewer_html), (void *)serve_viewer_html,
                                                             MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html; charset=utf-8");
    /* the page is self-contained: nothing may be loaded from elsewhere */
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- POST /v1/analyze ---- */

typedef struct {
    const AnalyzeModel *model;
    const char *text;
    const AnalyzeOptions *opt;
    char *json;
    int rc;
    char err[512];
} AnalyzeJob;

static void run_analyze(void *arg) {
    AnalyzeJob *a = arg;
    a->rc = analyze_text(a->model, a->text, strlen(a->text), a->opt, &a->json);
    if (a->rc != KN_OK) snprintf(a->err, sizeof a->err, "%s", kn_errmsg());
}

static enum MHD_Result handle_analyze(Server *s, struct MHD_Connection *c, const Request *rq) {
    const ServerConfig *cfg = s->cfg;
    char err[512];
    cJSON *j = json_args_parse(rq->body, rq->len, err, sizeof err);
    if (!j) return server_send_error(c, MHD_HTTP_BAD_REQUEST, err);
    AnalyzeOptions o;
    analyze_defaults(&o);
    const char *text = NULL;
    int64_t max_k = cfg->model.ds ? dstore_size(cfg->model.ds) : 1;
    int ok = json_args_string(j, "text", 1, &text, err, sizeof err) && json_args_int(j, "k", 1, max_k < 1024 ? (int)max_k : 1024, &o.k, err, sizeof err) &&
             json_args_double(j, "lambda", 0, 1, &o.lambda, err, sizeof err) &&
             json_args_double(j, "temperature", 1e-6, 1e9, &o.temperature, err, sizeof err) &&
             json_args_int(j, "context", 0, ANALYZE_CONTEXT_MAX, &o.context, err, sizeof err) && json_args_int(j, "top", 0, 16, &o.top, err, sizeof err);
    if (!ok) {
        cJSON_Delete(j);
        return server_send_error(c, MHD_HTTP_BAD_REQUEST, err);
    }
    AnalyzeJob a = {&cfg->model, text, &o, NULL, KN_OK, ""};
    server_compute(s, run_analyze, &a);
    cJSON_Delete(j);
    if (a.rc == KN_EINVAL) return server_send_error(c, MHD_HTTP_BAD_REQUEST, a.err);
    if (a.rc != KN_OK) return server_send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, a.err);
    return send_json(c, MHD_HTTP_OK, a.json);
}

/* ---- the access handler ---- */

static Route route_of(const char *url, const char *method, int *wrong_method) {
    static const struct {
        const char *path, *method;
        Route route;
    } routes[] = {
        {"/health", "GET", ROUTE_HEALTH},
        {"/", "GET", ROUTE_VIEWER},
        {"/index.html", "GET", ROUTE_VIEWER},
        {"/v1/analyze", "POST", ROUTE_ANALYZE},
        {"/v1/completions", "POST", ROUTE_COMPLETIONS},
    };
    *wrong_method = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(url, routes[i].path) != 0) continue;
        if (!strcmp(method, routes[i].method) || (!strcmp(method, "HEAD") && !strcmp(routes[i].method, "GET"))) return routes[i].route;
        *wrong_method = 1;
    }
    return ROUTE_NONE;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size, void **con_cls) {
    Server *s = cls;
    Request *rq = *con_cls;
    if (!rq) { /* the headers have arrived: route, admit, check the announced size */
        rq = calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        *con_cls = rq;
        int wrong_method;
        rq->route = route_of(url, method, &wrong_method);
        if (rq->route == ROUTE_NONE)
            return server_send_error(c, wrong_method ? MHD_HTTP_METHOD_NOT_ALLOWED : MHD_HTTP_NOT_FOUND,
                                     wrong_method ? "method not allowed on this path" : "no such path (GET /, GET /health, POST /v1/analyze, POST /v1/completions)");
        if (rq->route == ROUTE_ANALYZE || rq->route == ROUTE_COMPLETIONS) {
            const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
            if (cl && strtoull(cl, NULL, 10) > s->cfg->max_body) {
                char msg[128];
                snprintf(msg, sizeof msg, "request body of %s bytes; at most %zu", cl, s->cfg->max_body);
                return server_send_error(c, MHD_HTTP_CONTENT_TOO_LARGE, msg);
            }
            if (!server_admit(s)) return server_send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "busy: every slot and queue place is taken; retry later");
            rq->admitted = 1;
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) { /* a piece of the body */
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rq->too_large || rq->len + n > s->cfg->max_body) {
            rq->too_large = 1; /* read and dropped: the answer can only be queued once the request is complete */
            return MHD_YES;
        }
        char *grown = realloc(rq->body, rq->len + n + 1);
        if (!grown) return MHD_NO;
        rq->body = grown;
        memcpy(rq->body + rq->len, upload_data, n);
        rq->len += n;
        rq->body[rq->len] = '\0';
        return MHD_YES;
    }
    switch (rq->route) {
    case ROUTE_HEALTH: return send_health(s, c);
    case ROUTE_VIEWER: return send_viewer(c);
    default: break;
    }
    if (rq->too_large) {
        char msg[128];
        snprintf(msg, sizeof msg, "request body larger than %zu bytes", s->cfg->max_body);
        return server_send_error(c, MHD_HTTP_CONTENT_TOO_LARGE, msg);
    }
    if (rq->route == ROUTE_ANALYZE) return handle_analyze(s, c, rq);
    return completions_handle(s, c, rq->body, rq->len);
}

/* The request is over (answered, failed, or its client went away): its admission is released. */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode why) {
    Server *s = cls;
    Request *rq = *con_cls;
    if (!rq) return;
    if (rq->admitted) server_release(s);
    free(rq->body);
    free(rq);
    *con_cls = NULL;
}

static int resolve(const ServerConfig *cfg, struct sockaddr_storage *addr, socklen_t *len) {
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->port);
    int e = getaddrinfo(cfg->host, port, &hints, &res);
    if (e != 0) return kn_error(KN_EINVAL, "--host %s: %s", cfg->host, gai_strerror(e));
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return KN_OK;
}

/* Ends the n workers started (once the jobs queued are done) and frees what server_run set up. */
static void stop_workers(Server *s, int n) {
    pthread_mutex_lock(&s->lock);
    s->quit = 1;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; i < n; i++) pthread_join(s->workers[i], NULL);
    free(s->workers);
    pthread_cond_destroy(&s->changed);
    pthread_mutex_destroy(&s->lock);
}

int server_run(const ServerConfig *cfg) {
    Server s = {.cfg = cfg};
    struct sockaddr_storage addr;
    socklen_t addr_len;
    int rc = resolve(cfg, &addr, &addr_len);
    if (rc != KN_OK) return rc;
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.changed, NULL);
    s.workers = calloc((size_t)cfg->slots, sizeof *s.workers);
    int started = 0;
    while (s.workers && started < cfg->slots && pthread_create(&s.workers[started], NULL, worker_main, &s) == 0) started++;
    if (started < cfg->slots) rc = kn_error(KN_ENOMEM, "cannot start %d compute threads", cfg->slots);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_POLL;
    if (addr.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
    /* connections beyond the admitted requests can still ask for /health and the page */
    unsigned max_conn = (unsigned)(cfg->slots + cfg->queue + 64);
    struct MHD_Daemon *d = NULL;
    if (rc == KN_OK)
        d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, &s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT, max_conn,
                             MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_NOTIFY_COMPLETED, on_completed, &s, MHD_OPTION_END);
    if (rc == KN_OK && !d) rc = kn_error(KN_EIO, "cannot listen on %s port %d (in use, or not an address of this machine)", cfg->host, cfg->port);
    if (rc != KN_OK) {
        stop_workers(&s, started);
        return rc;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    int port = info ? info->port : cfg->port;
    int v6 = addr.ss_family == AF_INET6;
    fprintf(stderr, "knnlm serve: listening on http://%s%s%s:%d (%d slot%s of %d thread%s, queue %d); SIGTERM or Ctrl-C stops\n", v6 ? "[" : "",
            cfg->host, v6 ? "]" : "", port, cfg->slots, cfg->slots > 1 ? "s" : "", cfg->threads / cfg->slots > 0 ? cfg->threads / cfg->slots : 1,
            cfg->threads / cfg->slots > 1 ? "s" : "", cfg->queue);
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    int sig = 0;
    sigwait(&stop, &sig);
    /* drain: no new connection, no new work on the open ones, and wait for the admitted requests */
    pthread_mutex_lock(&s.lock);
    s.draining = 1;
    int waiting = s.in_flight;
    pthread_mutex_unlock(&s.lock);
    fprintf(stderr, "knnlm serve: %s: draining %d request%s\n", sig == SIGTERM ? "SIGTERM" : "SIGINT", waiting, waiting == 1 ? "" : "s");
    MHD_socket listen_fd = MHD_quiesce_daemon(d);
    pthread_mutex_lock(&s.lock);
    while (s.in_flight > 0) pthread_cond_wait(&s.changed, &s.lock);
    long long served = s.served, refused = s.refused;
    pthread_mutex_unlock(&s.lock);
    MHD_stop_daemon(d);
    if (listen_fd != MHD_INVALID_SOCKET) close(listen_fd);
    stop_workers(&s, started);
    fprintf(stderr, "knnlm serve: stopped (%lld requests served, %lld refused busy)\n", served, refused);
    return KN_OK;
}
