/* version.h — the tool's version, written into manifests. */
#ifndef KN_VERSION_H
#define KN_VERSION_H
#define KNNLM_VERSION "0.1.0"
#endif
