/* json_args.h — the fields of a JSON request body, checked: each getter leaves the default in place when the
 * field is absent (or null), and on a wrong type or an out-of-range value writes a message for the client
 * ("k: expected an integer from 1 to 64, got \"8\"") to err and returns 0. */
#ifndef KN_JSON_ARGS_H
#define KN_JSON_ARGS_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* The body as a JSON object (the caller deletes it), or NULL with the reason in err. */
cJSON *json_args_parse(const char *body, size_t len, char *err, size_t cap);

int json_args_string(const cJSON *obj, const char *name, int required, const char **out, char *err, size_t cap);
int json_args_int(const cJSON *obj, const char *name, int min, int max, int *out, char *err, size_t cap);
int json_args_double(const cJSON *obj, const char *name, double min, double max, double *out, char *err, size_t cap);
int json_args_bool(const cJSON *obj, const char *name, int *out, char *err, size_t cap);

#endif
