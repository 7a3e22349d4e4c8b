/* outpath.h — the check every command makes of its output paths before it starts any work, so that no
 * command ever destroys data: not its own input, not a file of a model or datastore folder it reads, not a
 * file the user did not mean to replace.
 *
 * A command declares what it reads and what it writes in an OutPlan, then calls outplan_check() once, before
 * loading anything. The rules (README "Outputs: what a command may replace"):
 *
 *  - An output file's folder must exist and be writable; the output must not be a folder, a device, a pipe
 *    or a dangling symbolic link (it is written under a temporary name and renamed into place: FileOut).
 *  - It must not be, nor resolve to (symbolic links, "..", hard links), any input file of the command.
 *  - Inside a folder the command reads (the model, the datastore, a shard), it may only be a new file or one
 *    this same output wrote before, and never one of the datastore's own files (keys.npy, vals.npy,
 *    tokens.npy, manifest.json, build.json), even with --force.
 *  - Two outputs of one command must not be the same file.
 *  - An existing file is replaced only if it is recognisably what this output writes (its marker, e.g. an
 *    index whose INDEX.meta.json says "knnlm-index", an eval JSON with "lm_ppl"), or with --force.
 *  - An output folder (a datastore) must not be a folder the command reads; an existing one must be a
 *    datastore or hold none of a datastore's files; no input may be one of the files it will hold.
 *
 * Errors are one line naming the option and the path, e.g.
 * "--train-out v.txt: is the same file as --corpus v.txt (an input); nothing was written". */
#ifndef KN_OUTPATH_H
#define KN_OUTPATH_H

typedef struct OutPlan OutPlan;

/* force: the command's --force (replace existing files that are not recognisably its own). */
int outplan_create(OutPlan **plan, int force);
void outplan_free(OutPlan *plan);

/* A file the command reads. path NULL: not given, ignored. */
int outplan_input(OutPlan *p, const char *flag, const char *path);
/* A folder whose files the command reads (a model folder). */
int outplan_input_folder(OutPlan *p, const char *flag, const char *dir);
/* A datastore folder the command reads: the folder, its own file names, and the folders of its linked parts
 * (datastore merge --link) as its manifest lists them. */
int outplan_input_dstore(OutPlan *p, const char *flag, const char *dir);
/* An index the command reads: INDEX, INDEX.meta.json and INDEX.ivfdata. */
int outplan_input_index(OutPlan *p, const char *flag, const char *path);

/* A file the command writes. marker: text found in the first 4 KiB of a file this output wrote before, so it
 * may be replaced without --force (NULL: never recognised). marker_file: the file the marker is looked for
 * in, instead of the output itself (NULL: the output; an index's INDEX.meta.json for INDEX). */
int outplan_output(OutPlan *p, const char *flag, const char *path, const char *marker, const char *marker_file);
/* An index the command writes: INDEX, INDEX.meta.json and, with ondisk, INDEX.ivfdata. */
int outplan_output_index(OutPlan *p, const char *flag, const char *path, int ondisk);
/* A datastore folder the command writes (datastore build, datastore merge). */
int outplan_output_dstore(OutPlan *p, const char *flag, const char *dir);

/* Applies the rules above to everything declared. KN_OK, or an error (KN_EINVAL, KN_ENOTFOUND) whose message
 * names the option and the path. */
int outplan_check(const OutPlan *p);

/* The markers of what knnlm writes (see outplan_output). */
#define OUT_MARK_INDEX_META "\"format\":\t\"knnlm-index\""
#define OUT_MARK_EVAL_JSON "\"lm_ppl\":"
#define OUT_MARK_EVAL_CSV "lambda,k,temperature,ppl,"
#define OUT_MARK_PLOT_SVG "<clipPath id=\"plot-area\">"
#define OUT_MARK_CASES "\"lm+knn\":"

#endif
