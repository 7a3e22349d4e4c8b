/* completions.c — see completions.h.
 *
 * The generation runs on a compute worker (endpoint.h). Without "stream" the connection's thread waits for it
 * and answers one JSON object. With it, generate() (which pushes tokens to a callback) appends each event to a
 * buffer, and libmicrohttpd pulls the buffer through a content-reader callback in the connection's thread. When
 * the client goes away, libmicrohttpd frees the response: that sets `cancelled`, the next token's callback stops
 * the generation, and the worker is free for the next job. */
#include "serve/completions.h"

#include "knnlm/generate.h"
#include "serve/json_args.h"
#include "util/error.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static atomic_ullong completion_counter;

typedef struct {
    GenerateOptions opt;
    IdVec prompt;
    int stream;
    char id[48];
    long long created;
} Completion;

/* The request's fields, checked; 0 with a message in err. */
static int parse_request(const ServerConfig *cfg, const char *body, size_t len, Completion *cp, char *err, size_t cap) {
    cJSON *j = json_args_parse(body, len, err, cap);
    if (!j) return 0;
    GenerateOptions *o = &cp->opt;
    generate_defaults(o);
    o->max_new_tokens = 16; /* OpenAI's default */
    o->eos_id = cfg->model.eos_id;
    o->index = cfg->model.index;
    o->dstore = cfg->model.ds;
    if (cfg->model.ds) gpt2_key_parse(dstore_manifest(cfg->model.ds)->key, &o->key);
    o->exact_distances = cfg->model.exact_distances;
    const char *prompt = NULL;
    double seed = 0;
    int n = 1, k_max = cfg->model.ds ? (dstore_size(cfg->model.ds) < 1024 ? (int)dstore_size(cfg->model.ds) : 1024) : 1024;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "prompt");
    /* a prompt is a string, or (as OpenAI also takes) a list holding one string */
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && cJSON_IsString(cJSON_GetArrayItem(p, 0))) prompt = cJSON_GetArrayItem(p, 0)->valuestring;
    int ok = prompt || json_args_string(j, "prompt", 1, &prompt, err, cap);
    ok = ok && json_args_int(j, "max_tokens", 0, cfg->max_tokens, &o->max_new_tokens, err, cap) &&
         json_args_double(j, "temperature", 0, 100, &o->temperature, err, cap) && json_args_double(j, "top_p", 1e-9, 1, &o->top_p, err, cap) &&
         json_args_int(j, "top_k", 0, 1 << 20, &o->top_k, err, cap) && json_args_double(j, "seed", 0, 9007199254740991.0, &seed, err, cap) &&
         json_args_bool(j, "stream", &cp->stream, err, cap) && json_args_double(j, "knn_lambda", 0, 1, &o->lambda, err, cap) &&
         json_args_int(j, "knn_k", 1, k_max, &o->k, err, cap) && json_args_double(j, "knn_temperature", 1e-6, 1e9, &o->knn_temperature, err, cap) &&
         json_args_int(j, "n", 1, 1, &n, err, cap);
    if (ok && seed != (double)(uint64_t)seed) ok = 0, snprintf(err, cap, "seed: expected a whole number");
    o->seed = (uint64_t)seed;
    int rc = KN_OK;
    if (ok && (rc = tokenizer_encode(cfg->model.tk, prompt, strlen(prompt), 0, &cp->prompt)) != KN_OK) {
        snprintf(err, cap, "prompt: %s", kn_errmsg());
        ok = 0;
    }
    if (ok && cp->prompt.len == 0) ok = 0, snprintf(err, cap, "prompt: gives no tokens");
    cJSON_Delete(j);
    snprintf(cp->id, sizeof cp->id, "cmpl-knnlm-%llu", (unsigned long long)atomic_fetch_add(&completion_counter, 1) + 1);
    cp->created = (long long)time(NULL);
    return ok;
}

static const char *finish_reason(GenerateStop stop) { return stop == GENERATE_STOP_EOS ? "stop" : "length"; }

/* One completion object; text may be NULL (""), finish NULL (null: more follows). */
static cJSON *completion_json(const ServerConfig *cfg, const Completion *cp, const char *text, size_t text_len, const char *finish) {
    cJSON *j = cJSON_CreateObject(), *c = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", cp->id);
    cJSON_AddStringToObject(j, "object", "text_completion");
    cJSON_AddNumberToObject(j, "created", (double)cp->created);
    cJSON_AddStringToObject(j, "model", cfg->model_dir);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(j, "choices"), c);
    char *t = strndup(text ? text : "", text ? text_len : 0);
    cJSON_AddStringToObject(c, "text", t ? t : "");
    free(t);
    cJSON_AddNumberToObject(c, "index", 0);
    cJSON_AddNullToObject(c, "logprobs");
    if (finish) cJSON_AddStringToObject(c, "finish_reason", finish);
    else cJSON_AddNullToObject(c, "finish_reason");
    return j;
}

static void add_usage(cJSON *j, int prompt, int generated) {
    cJSON *u = cJSON_AddObjectToObject(j, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", generated);
    cJSON_AddNumberToObject(u, "total_tokens", prompt + generated);
}

/* ---- without stream: the whole text in one answer ---- */

typedef struct {
    char *text;
    size_t len, cap;
} TextBuf;

static int textbuf_add(TextBuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *g = realloc(b->text, cap);
        if (!g) return kn_error(KN_ENOMEM, "out of memory");
        b->text = g;
        b->cap = cap;
    }
    memcpy(b->text + b->len, s, n);
    b->len += n;
    b->text[b->len] = '\0';
    return KN_OK;
}

static int collect_text(void *ctx, const GeneratedToken *t) { return t->text ? textbuf_add(ctx, t->text, t->text_len) : KN_OK; }

typedef struct {
    const ServerConfig *cfg;
    const Completion *cp;
    TextBuf text;
    GenerateStats stats;
    int rc;
    char err[512];
} WholeJob;

static void run_whole(void *arg) {
    WholeJob *w = arg;
    const AnalyzeModel *m = &w->cfg->model;
    w->rc = generate(m->model, m->tk, w->cp->prompt.data, (int)w->cp->prompt.len, &w->cp->opt, collect_text, &w->text, &w->stats);
    if (w->rc != KN_OK) snprintf(w->err, sizeof w->err, "%s", kn_errmsg());
}

static enum MHD_Result answer_whole(Server *s, struct MHD_Connection *c, Completion *cp) {
    const ServerConfig *cfg = server_config(s);
    WholeJob w = {cfg, cp, {0}, {0}, KN_OK, ""};
    server_compute(s, run_whole, &w);
    TextBuf text = w.text;
    GenerateStats st = w.stats;
    if (w.rc != KN_OK) {
        free(text.text);
        return server_send_error(c, w.rc == KN_EINVAL ? MHD_HTTP_BAD_REQUEST : MHD_HTTP_INTERNAL_SERVER_ERROR, w.err);
    }
    cJSON *j = completion_json(cfg, cp, text.text, text.len, finish_reason(st.stop));
    add_usage(j, (int)cp->prompt.len, st.generated);
    free(text.text);
    char *out = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return server_send_json(c, MHD_HTTP_OK, out);
}

/* ---- with stream: server-sent events ---- */

typedef struct {
    Server *server;
    Completion cp;
    ServerJob job;           /* the generation, on a compute worker */
    pthread_mutex_t lock;
    pthread_cond_t more;
    TextBuf events;          /* produced, not yet sent: events.text[sent .. len) */
    size_t sent;
    int done;                /* the generation thread has finished (and written its last event) */
    int cancelled;           /* the client went away */
} Stream;

static void stream_append(Stream *st, const char *data, size_t n) {
    pthread_mutex_lock(&st->lock);
    textbuf_add(&st->events, data, n); /* out of memory drops the event: the stream then ends short */
    pthread_cond_broadcast(&st->more);
    pthread_mutex_unlock(&st->lock);
}

static void stream_event(Stream *st, cJSON *j) {
    char *json = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!json) return;
    stream_append(st, "data: ", 6);
    stream_append(st, json, strlen(json));
    stream_append(st, "\n\n", 2);
    free(json);
}

static int stream_token(void *ctx, const GeneratedToken *t) {
    Stream *st = ctx;
    pthread_mutex_lock(&st->lock);
    int cancelled = st->cancelled;
    pthread_mutex_unlock(&st->lock);
    if (cancelled) return kn_error(KN_EINTR, "the client went away");
    if (!t->last && t->text_len == 0) return KN_OK; /* a token that completes no character yet */
    stream_event(st, completion_json(server_config(st->server), &st->cp, t->text, t->text_len, NULL));
    return KN_OK;
}

static void stream_generate(void *arg) {
    Stream *st = arg;
    const ServerConfig *cfg = server_config(st->server);
    GenerateStats gs = {0};
    pthread_mutex_lock(&st->lock);
    int gone = st->cancelled; /* the client left while the job waited for a worker */
    pthread_mutex_unlock(&st->lock);
    int rc = gone ? KN_EINTR : generate(cfg->model.model, cfg->model.tk, st->cp.prompt.data, (int)st->cp.prompt.len, &st->cp.opt, stream_token, st, &gs);
    if (rc == KN_OK) {
        cJSON *j = completion_json(cfg, &st->cp, "", 0, finish_reason(gs.stop));
        add_usage(j, (int)st->cp.prompt.len, gs.generated);
        stream_event(st, j);
    } else if (rc != KN_EINTR) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "error", kn_errmsg());
        stream_event(st, j);
    }
    if (rc != KN_EINTR) stream_append(st, "data: [DONE]\n\n", 14);
    pthread_mutex_lock(&st->lock);
    st->done = 1;
    pthread_cond_broadcast(&st->more);
    pthread_mutex_unlock(&st->lock);
}

/* libmicrohttpd asks for the next bytes: wait until there are some, or the generation is over. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    Stream *st = cls;
    pthread_mutex_lock(&st->lock);
    while (st->sent == st->events.len && !st->done) pthread_cond_wait(&st->more, &st->lock);
    size_t n = st->events.len - st->sent;
    if (n > max) n = max;
    memcpy(buf, st->events.text + st->sent, n);
    st->sent += n;
    int over = n == 0 && st->done;
    pthread_mutex_unlock(&st->lock);
    return over ? MHD_CONTENT_READER_END_OF_STREAM : (ssize_t)n;
}

/* The response is freed: the stream ended, or its client went away. */
static void stream_free(void *cls) {
    Stream *st = cls;
    pthread_mutex_lock(&st->lock);
    st->cancelled = 1;
    pthread_mutex_unlock(&st->lock);
    server_wait(st->server, &st->job);
    pthread_cond_destroy(&st->more);
    pthread_mutex_destroy(&st->lock);
    idvec_free(&st->cp.prompt);
    free(st->events.text);
    free(st);
}

static enum MHD_Result answer_stream(Server *s, struct MHD_Connection *c, Completion *cp) {
    Stream *st = calloc(1, sizeof *st);
    if (!st) {
        idvec_free(&cp->prompt);
        return server_send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    st->server = s;
    st->cp = *cp;
    pthread_mutex_init(&st->lock, NULL);
    pthread_cond_init(&st->more, NULL);
    st->job.run = stream_generate;
    st->job.arg = st;
    server_submit(s, &st->job);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, st, stream_free);
    if (!r) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream; charset=utf-8");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

enum MHD_Result completions_handle(Server *s, struct MHD_Connection *c, const char *body, size_t len) {
    Completion cp = {0};
    char err[512];
    if (!parse_request(server_config(s), body, len, &cp, err, sizeof err)) {
        idvec_free(&cp.prompt);
        return server_send_error(c, MHD_HTTP_BAD_REQUEST, err);
    }
    if (cp.stream) return answer_stream(s, c, &cp);
    enum MHD_Result ret = answer_whole(s, c, &cp);
    idvec_free(&cp.prompt);
    return ret;
}
