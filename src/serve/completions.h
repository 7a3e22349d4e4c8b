/* completions.h — POST /v1/completions: OpenAI's completions shape over the kNN-LM's generation
 * (knnlm/generate.h): {"prompt", "max_tokens", "temperature", "top_p", "seed", "stream", "knn_lambda", "knn_k"}
 * -> {"id", "object": "text_completion", "created", "model", "choices": [{"text", "index", "finish_reason"}],
 * "usage"}; with "stream": true, server-sent events of the same objects, one per token, then "data: [DONE]". */
#ifndef KN_COMPLETIONS_H
#define KN_COMPLETIONS_H

#include "serve/endpoint.h"

enum MHD_Result completions_handle(Server *s, struct MHD_Connection *c, const char *body, size_t len);

#endif
