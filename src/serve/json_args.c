/* json_args.c — see json_args.h. */
#include "serve/json_args.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

cJSON *json_args_parse(const char *body, size_t len, char *err, size_t cap) {
    if (!body || len == 0) {
        snprintf(err, cap, "empty body: expected a JSON object");
        return NULL;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!j) {
        snprintf(err, cap, "malformed JSON at byte %td", end ? end - body : (ptrdiff_t)0);
        return NULL;
    }
    while (end && (size_t)(end - body) < len && strchr(" \t\r\n", *end)) end++;
    if (end && (size_t)(end - body) < len) {
        snprintf(err, cap, "malformed JSON: text after the object at byte %td", end - body);
        cJSON_Delete(j);
        return NULL;
    }
    if (!cJSON_IsObject(j)) {
        snprintf(err, cap, "expected a JSON object");
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

static const cJSON *field(const cJSON *obj, const char *name) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, name);
    return f && !cJSON_IsNull(f) ? f : NULL;
}

int json_args_string(const cJSON *obj, const char *name, int required, const char **out, char *err, size_t cap) {
    const cJSON *f = field(obj, name);
    if (!f) {
        if (required) snprintf(err, cap, "%s: missing (a string is required)", name);
        return !required;
    }
    if (!cJSON_IsString(f)) {
        snprintf(err, cap, "%s: expected a string", name);
        return 0;
    }
    *out = f->valuestring;
    return 1;
}

int json_args_int(const cJSON *obj, const char *name, int min, int max, int *out, char *err, size_t cap) {
    const cJSON *f = field(obj, name);
    if (!f) return 1;
    double x = cJSON_IsNumber(f) ? f->valuedouble : NAN;
    if (!(x >= min && x <= max) || x != floor(x)) {
        snprintf(err, cap, "%s: expected an integer from %d to %d", name, min, max);
        return 0;
    }
    *out = (int)x;
    return 1;
}

int json_args_double(const cJSON *obj, const char *name, double min, double max, double *out, char *err, size_t cap) {
    const cJSON *f = field(obj, name);
    if (!f) return 1;
    double x = cJSON_IsNumber(f) ? f->valuedouble : NAN;
    if (!(x >= min && x <= max)) {
        snprintf(err, cap, "%s: expected a number from %g to %g", name, min, max);
        return 0;
    }
    *out = x;
    return 1;
}

int json_args_bool(const cJSON *obj, const char *name, int *out, char *err, size_t cap) {
    const cJSON *f = field(obj, name);
    if (!f) return 1;
    if (!cJSON_IsBool(f)) {
        snprintf(err, cap, "%s: expected true or false", name);
        return 0;
    }
    *out = cJSON_IsTrue(f);
    return 1;
}
