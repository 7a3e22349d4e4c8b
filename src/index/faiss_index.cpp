/* faiss_index.cpp — index.h on the Faiss C++ API; the only file of the project that includes Faiss.
 *
 * Two rules shape every function here: nothing Faiss throws crosses into C (each call runs inside
 * guarded(), which turns an exception into a one-line kn_error naming the file), and nothing that Faiss
 * would only assert() on or fault on reaches it (shapes, training state, and the sizes of mapped files
 * are checked first: Faiss maps an inverted-list file without checking that it is long enough, and a
 * short one would SIGBUS at search time).
 *
 * On-disk lists: we write the ivfdata file ourselves, with write(2), instead of through
 * OnDiskInvertedLists::merge_from. Faiss' merge truncates a sparse file and fills it through a writable
 * map, so a full disk kills the process with SIGBUS (and it prints to stdout); write(2) reports ENOSPC.
 * The layout is the one OnDiskInvertedLists documents: per list, codes[capacity * code_size] then
 * int64 ids[capacity], lists packed one after the other (a "compact" file). */
#include "index/index.h"

extern "C" {
#include "util/error.h"
#include "util/file.h"
extern "C" {
#include "model/gemm.h"
}
}

#include <faiss/IndexFlat.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFFastScan.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexPQ.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/IndexRefine.h>
#include <faiss/IndexIDMap.h>
#include <faiss/VectorTransform.h>
#include <faiss/impl/io.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <faiss/invlists/InvertedLists.h>
#include <faiss/invlists/OnDiskInvertedLists.h>
#include <faiss/utils/distances.h>

#include <cxxabi.h>
#include <omp.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cfloat>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <mutex>
#include <string>
#include <sys/stat.h>
#include <typeinfo>
#include <unistd.h>
#include <vector>

static_assert(sizeof(faiss::Index::idx_t) == sizeof(int64_t), "Faiss ids are int64");

using faiss::Index;
using faiss::IndexIVF;
using faiss::InvertedLists;
using faiss::OnDiskInvertedLists;
typedef faiss::Index::idx_t idx_t;

/* Centroids c[n, d] packed for gemm_f32_packed, with their squared norms: the nearest ones of many vectors at
 * our GEMM's speed. Debian's Faiss finds them with OpenBLAS's Haswell sgemm (about half our GEMM's rate on
 * AVX-512 machines) and, under 20 queries, with a scalar loop. Distances are Faiss' |x|^2 + |c|^2 - 2 x.c
 * clamped at 0, ties go to the lower centroid as in Faiss; two centroids within float rounding of each other
 * may be taken the other way round than by Faiss' sgemm (both are equally near). The same bits for any
 * thread count. */
struct Centroids {
    int d = 0, n = 0;
    std::vector<float> packed, norms;

    void set(const float *c, int count, int dim, int nthreads) {
        d = dim, n = count;
        packed.resize(gemm_f32_packed_size(d, n));
        gemm_pack_f32(packed.data(), c, (size_t)d, d, n, 1, nthreads);
        norms.resize((size_t)n);
        faiss::fvec_norms_L2sqr(norms.data(), c, (size_t)d, (size_t)n);
    }

    /* rows of x whose distances fit in 64 MB at once */
    int64_t block() const { return std::max<int64_t>(GEMM_MR, ((int64_t)16 << 20) / n); }

    /* dis[m, n]: the distances of x's m rows (ldx floats apart; 0: d) to every centroid */
    void distances(int m, const float *x, float *dis, int nthreads, size_t ldx = 0) const {
        if (ldx == 0) ldx = (size_t)d;
        gemm_f32_packed(dis, (size_t)n, x, ldx, packed.data(), m, d, n, nthreads);
        const float *cn = norms.data();
#pragma omp parallel for num_threads(nthreads) schedule(static) if (nthreads > 1)
        for (int r = 0; r < m; r++) {
            float *row = dis + (size_t)r * n;
            const float xnorm = faiss::fvec_norm_L2sqr(x + (size_t)r * ldx, (size_t)d);
            for (int j = 0; j < n; j++) {
                const float v = xnorm + cn[j] - 2 * row[j];
                row[j] = v < 0 ? 0 : v;
            }
        }
    }

    /* the nearest centroid of each of x[count, d] (-1 for a NaN row, as Faiss leaves it), and its distance
     * when dist is not null */
    void nearest(int64_t count, const float *x, float *dist, faiss::Index::idx_t *labels, int nthreads, size_t ldx = 0) const {
        if (ldx == 0) ldx = (size_t)d;
        const int64_t bl = std::min(block(), count);
        std::vector<float> dis((size_t)bl * n);
        for (int64_t b = 0; b < count; b += bl) {
            const int m = (int)std::min(bl, count - b);
            distances(m, x + (size_t)b * ldx, dis.data(), nthreads, ldx);
#pragma omp parallel for num_threads(nthreads) schedule(static)
            for (int r = 0; r < m; r++) {
                const float *row = dis.data() + (size_t)r * n;
                int best = 0;
                for (int j = 1; j < n; j++)
                    if (row[j] < row[best]) best = j;
                labels[b + r] = std::isnan(row[best]) ? -1 : best;
                if (dist) dist[b + r] = row[best];
            }
        }
    }
};

/* A product quantizer's encoder on our GEMM: each sub-quantizer's ksub centroids as one Centroids, and a code
 * byte per sub-quantizer is the nearest of them. Debian's Faiss computes these distances with one OpenBLAS
 * sgemm of depth dsub per sub-quantizer (and, below 16 dimensions a sub-quantizer, with a scalar loop per
 * vector: the crawl of PQ64 at 768 dimensions); OpenBLAS falls back to its SSE3 kernels on CPUs it does not
 * know. The same distances (|x|^2 + |c|^2 - 2 x.c) and the same tie rule as Faiss' compute_code_from_distance_table,
 * so the codes are Faiss' but where two centroids are within float rounding of each other (then either is as
 * near); tests/check_index.py checks them against Python's Faiss. 8-bit codes only. */
struct PqEncoder {
    std::vector<Centroids> subs;
    int d = 0, dsub = 0;

    void set(const faiss::ProductQuantizer &pq, int nthreads) {
        d = (int)pq.d, dsub = (int)pq.dsub;
        subs.resize(pq.M);
        for (size_t m = 0; m < pq.M; m++) subs[m].set(pq.get_centroids(m, 0), (int)pq.ksub, dsub, nthreads);
    }

    /* codes[count, M] of x[count, d] */
    void encode(int64_t count, const float *x, uint8_t *codes, int nthreads) const {
        const size_t M = subs.size();
        std::vector<faiss::Index::idx_t> labels((size_t)count);
        for (size_t m = 0; m < M; m++) {
            subs[m].nearest(count, x + m * dsub, nullptr, labels.data(), nthreads, (size_t)d);
            for (int64_t i = 0; i < count; i++) codes[(size_t)i * M + m] = (uint8_t)(labels[(size_t)i] < 0 ? 0 : labels[(size_t)i]);
        }
    }
};

struct KnnIndex {
    Index *faiss = nullptr; /* owned */
    IndexIVF *ivf = nullptr; /* the IVF inside faiss (itself, or behind a transform, IDMap or refine), or null */
    std::string name;       /* what messages name: the index file, or "index 'FACTORY'" */
    std::string ivfdata;    /* the mapped ivfdata file of an on-disk index, "" otherwise */
    bool mapped = false;    /* the lists are mapped from the index file itself (INDEX_READ_MMAP) */
    bool read_only = false;
    /* coarse_on_gemm's indexes: the IVF's centroids, made on first use by an add or a search (which may run in
     * several threads at once: under the lock) */
    Centroids coarse;
    PqEncoder pq; /* an IVF-PQ's encoder, made with the centroids (coarse_ready) */
    std::mutex coarse_lock;
    ~KnnIndex() { delete faiss; }
};

/* ---- errors ---- */

/* Faiss' messages read "Error in <function> at <file>:<line>: Error: '<cond>' failed: <reason>", sometimes
 * over several lines. Keeps the reason (or the condition when there is none) on one line. */
static std::string condense(const char *what) {
    std::string s = what ? what : "";
    if (s.compare(0, 9, "Error in ") == 0) {
        size_t at = s.find(" at ");
        size_t colon = at == std::string::npos ? at : s.find(": ", at + 4);
        if (colon != std::string::npos) s = s.substr(colon + 2);
    }
    if (s.compare(0, 7, "Error: ") == 0) s = s.substr(7);
    if (!s.empty() && s[0] == '\'') {
        size_t failed = s.find("' failed: ");
        if (failed != std::string::npos) s = s.substr(failed + 10);
    }
    std::string out;
    for (char c : s) {
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
        if (c == ' ' && (out.empty() || out.back() == ' ')) continue;
        out += c;
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
}

/* Runs f (which returns a KN_* code) with every exception turned into `code` and a message
 * "NAME: DOING: reason". Out-of-memory is KN_ENOMEM whatever `code` is. */
template <class F> static int guarded(int code, const std::string &name, const char *doing, F &&f) {
    try {
        return f();
    } catch (const std::bad_alloc &) {
        return kn_error(KN_ENOMEM, "%s: out of memory %s", name.c_str(), doing);
    } catch (const std::exception &e) {
        return kn_error(code, "%s: %s: %s", name.c_str(), doing, condense(e.what()).c_str());
    } catch (...) {
        return kn_error(code, "%s: %s: unknown C++ exception", name.c_str(), doing);
    }
}

/* ---- what is inside an index ---- */

/* The IVF that holds the data: the index itself, or the one behind a transform chain (OPQ, PCA), an
 * IDMap, or a refine stage. Faiss' try_extract_index_ivf does not look inside IndexRefine. */
static IndexIVF *find_ivf(Index *idx) {
    if (auto *pt = dynamic_cast<faiss::IndexPreTransform *>(idx)) idx = pt->index;
    if (auto *map = dynamic_cast<faiss::IndexIDMap *>(idx)) idx = map->index;
    if (auto *rf = dynamic_cast<faiss::IndexRefine *>(idx)) idx = rf->base_index;
    return dynamic_cast<IndexIVF *>(idx);
}

/* The IVF of an index whose only data are its inverted lists (IVF, or IVF behind transforms): the kinds
 * whose lists can be moved to disk and merged by copying lists. Null for anything else. */
static IndexIVF *listed_ivf(Index *idx) {
    if (auto *pt = dynamic_cast<faiss::IndexPreTransform *>(idx)) idx = pt->index;
    return dynamic_cast<IndexIVF *>(idx);
}

/* Fast-scan IVF indexes ("...x4fs") keep their codes interleaved in blocks of 32 vectors, which Faiss reads
 * with aligned loads: an on-disk list of such codes is neither laid out nor aligned as they expect (Faiss
 * aborts on an assertion). Refused, by name, before anything is written. */
static int check_ondisk_capable(const IndexIVF *ivf, const std::string &name) {
    if (dynamic_cast<const faiss::IndexIVFFastScan *>(ivf))
        return kn_error(KN_EINVAL, "%s: a fast-scan IVF index (x4fs) cannot keep its lists on disk; use a plain PQ (e.g. \"IVF4096,PQ64\")",
                        name.c_str());
    return KN_OK;
}


static std::string type_name(const Index *idx) {
    int status = 0;
    char *dem = abi::__cxa_demangle(typeid(*idx).name(), nullptr, nullptr, &status);
    std::string s = status == 0 && dem ? dem : typeid(*idx).name();
    free(dem);
    if (s.compare(0, 7, "faiss::") == 0) s = s.substr(7);
    return s;
}

/* How many training points the index's quantizers need: `hard` below which we refuse (one point per
 * centroid: Faiss' k-means throws below that), `recommended` Faiss' 39 per centroid. `what` names the
 * quantizer that sets `hard`. */
struct TrainNeeds {
    int64_t hard = 0, recommended = 0;
    std::string what;
    void need(int64_t h, int64_t r, const std::string &w) {
        if (h > hard) {
            hard = h;
            what = w;
        }
        if (r > recommended) recommended = r;
    }
};

enum { FAISS_POINTS_PER_CENTROID = 39 }; /* Faiss' ClusteringParameters::min_points_per_centroid */

static void pq_needs(const faiss::ProductQuantizer &pq, TrainNeeds *t) {
    int64_t k = (int64_t)pq.ksub;
    t->need(k, k * FAISS_POINTS_PER_CENTROID,
            "PQ" + std::to_string(pq.M) + " (" + std::to_string(k) + " centroids per subquantizer)");
}

static TrainNeeds train_needs(const Index *idx) {
    TrainNeeds t;
    if (idx->is_trained) return t;
    if (auto *pt = dynamic_cast<const faiss::IndexPreTransform *>(idx)) {
        for (const faiss::VectorTransform *vt : pt->chain)
            if (auto *opq = dynamic_cast<const faiss::OPQMatrix *>(vt))
                if (!opq->is_trained)
                    t.need(256, 256 * FAISS_POINTS_PER_CENTROID,
                           "OPQ" + std::to_string(opq->M) + " (256 centroids per subquantizer)");
        idx = pt->index;
    }
    if (auto *ivf = dynamic_cast<const IndexIVF *>(idx)) {
        int64_t k = (int64_t)ivf->nlist;
        if (!ivf->quantizer->is_trained || ivf->quantizer->ntotal != (idx_t)ivf->nlist)
            t.need(k, k * FAISS_POINTS_PER_CENTROID, "IVF" + std::to_string(k) + " (one point per list)");
    }
    if (auto *ivfpq = dynamic_cast<const faiss::IndexIVFPQ *>(idx)) pq_needs(ivfpq->pq, &t);
    if (auto *ipq = dynamic_cast<const faiss::IndexPQ *>(idx)) pq_needs(ipq->pq, &t);
    return t;
}

/* Faiss prints "WARNING clustering N points to K centroids" on stderr when N < 39 K; min_points_per_centroid
 * is used for nothing else, so zeroing it silences the library without changing what it computes.
 * OPQ trains a PQ of its own, built inside OPQMatrix::train unless opq->pq provides one "constructed with
 * (d_out, M, _)": we provide that same default PQ with the warning off (OPQ sets the fields it tunes
 * itself), held in `opq_pqs` until training is over. */
static void silence_training_warnings(Index *idx, std::vector<std::unique_ptr<faiss::ProductQuantizer>> *opq_pqs) {
    if (auto *pt = dynamic_cast<faiss::IndexPreTransform *>(idx)) {
        for (faiss::VectorTransform *vt : pt->chain) {
            auto *opq = dynamic_cast<faiss::OPQMatrix *>(vt);
            if (!opq || opq->is_trained || opq->pq) continue;
            opq_pqs->emplace_back(new faiss::ProductQuantizer(opq->d_out, opq->M, 8));
            opq_pqs->back()->cp.min_points_per_centroid = 0;
            opq->pq = opq_pqs->back().get();
        }
        idx = pt->index;
    }
    if (auto *ivf = dynamic_cast<IndexIVF *>(idx)) ivf->cp.min_points_per_centroid = 0;
    if (auto *ivfpq = dynamic_cast<faiss::IndexIVFPQ *>(idx)) ivfpq->pq.cp.min_points_per_centroid = 0;
    if (auto *ipq = dynamic_cast<faiss::IndexPQ *>(idx)) ipq->pq.cp.min_points_per_centroid = 0;
}

/* Detaches the PQs silence_training_warnings lent to OPQ (OPQ does not own them). */
static void return_opq_pqs(Index *idx, const std::vector<std::unique_ptr<faiss::ProductQuantizer>> &opq_pqs) {
    if (auto *pt = dynamic_cast<faiss::IndexPreTransform *>(idx))
        for (faiss::VectorTransform *vt : pt->chain)
            if (auto *opq = dynamic_cast<faiss::OPQMatrix *>(vt))
                for (const auto &pq : opq_pqs)
                    if (opq->pq == pq.get()) opq->pq = nullptr;
}

/* index_factory asks for polysemous training of every "PQn" (unless "PQnnp"): a simulated annealing that
 * permutes each PQ codebook so that Hamming distances between codes mimic true distances. Only polysemous
 * filtering (polysemous_ht) uses that order; an L2 search reads the same table entries under other indexes
 * and returns the same ids and distances, bit for bit. It takes minutes for PQ16 and hours for PQ64, so we
 * skip it, as the original kNN-LM code (a plain IndexIVFPQ) does. */
static void skip_polysemous_training(Index *idx) {
    if (auto *pt = dynamic_cast<faiss::IndexPreTransform *>(idx)) idx = pt->index;
    if (auto *ivfpq = dynamic_cast<faiss::IndexIVFPQ *>(idx)) ivfpq->do_polysemous_training = false;
    if (auto *ipq = dynamic_cast<faiss::IndexPQ *>(idx)) ipq->do_polysemous_training = false;
}

/* ---- paths ---- */

static std::string dir_of(const std::string &path) {
    size_t slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

static std::string base_of(const std::string &path) {
    size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

/* The absolute form of path, whose folder must exist (the file itself need not). */
static int absolute_path(const std::string &path, std::string *out) {
    std::string dir = dir_of(path);
    char *real = realpath(dir.c_str(), nullptr);
    if (!real) return kn_error_errno("%s: cannot resolve the folder %s", path.c_str(), dir.c_str());
    std::string r = real;
    free(real);
    *out = (r == "/" ? r : r + "/") + base_of(path);
    return KN_OK;
}

/* stat() of a file that must exist and be a regular file. */
static int stat_regular(const std::string &path, struct stat *st) {
    if (stat(path.c_str(), st) != 0) return kn_error_errno("%s: cannot open", path.c_str());
    if (!S_ISREG(st->st_mode)) return kn_error(KN_EINVAL, "%s: not a regular file", path.c_str());
    return KN_OK;
}

/* ---- writing Faiss files ---- */

/* Writes idx as a Faiss file through a temporary + fsync + rename (FileOut), so a reader never sees half a
 * file and a failure leaves none. */
static int write_faiss_file(const Index *idx, const char *path, const std::string &name) {
    FileOut out;
    int rc = file_out_open(&out, path);
    if (rc != KN_OK) return rc;
    try {
        faiss::write_index(idx, out.f);
    } catch (const std::bad_alloc &) {
        rc = kn_error(KN_ENOMEM, "%s: out of memory writing %s", name.c_str(), path);
    } catch (const std::exception &e) {
        /* Faiss' own message for a FILE* has no file name ("write error in : 3 != 4 (...)"): say it with ours. */
        int saved = errno;
        if (ferror(out.f)) {
            errno = saved;
            rc = file_out_write_error(&out);
        } else {
            int code = saved == ENOSPC || saved == EDQUOT ? KN_ENOSPC : KN_EIO;
            rc = kn_error(code, "%s: writing the index failed: %s", path, condense(e.what()).c_str());
        }
    }
    if (rc != KN_OK) {
        file_out_abort(&out);
        return rc;
    }
    return file_out_commit(&out);
}

/* Swaps other inverted lists (and the entry counts `ntotal`) into an IVF index for as long as it lives, so
 * that the index can be written with lists it does not own; restores everything after, nprobe included. */
struct ListsSwap {
    Index *idx;
    IndexIVF *ivf;
    InvertedLists *lists;
    bool own;
    idx_t ntotal_idx, ntotal_ivf;
    size_t nprobe;
    ListsSwap(Index *i, IndexIVF *v, InvertedLists *other, idx_t ntotal)
            : idx(i), ivf(v), lists(v->invlists), own(v->own_invlists), ntotal_idx(i->ntotal), ntotal_ivf(v->ntotal),
              nprobe(v->nprobe) {
        ivf->invlists = other;
        ivf->own_invlists = false;
        ivf->ntotal = ntotal;
        idx->ntotal = ntotal;
    }
    ~ListsSwap() {
        ivf->invlists = lists;
        ivf->own_invlists = own;
        ivf->ntotal = ntotal_ivf;
        idx->ntotal = ntotal_idx;
        ivf->nprobe = nprobe;
    }
};

/* The bytes of idx as a Faiss file with empty lists, no entries and nprobe 1: everything that decides how a
 * vector is encoded (quantizer centroids, PQ codebooks, transforms). Two indexes with equal skeletons put a
 * vector in the same list with the same code. */
static int skeleton(Index *idx, IndexIVF *ivf, const std::string &name, std::vector<uint8_t> *out) {
    return guarded(KN_EFORMAT, name, "serialising the trained quantizers", [&]() -> int {
        faiss::ArrayInvertedLists empty(ivf->nlist, ivf->code_size);
        ListsSwap swap(idx, ivf, &empty, 0);
        ivf->nprobe = 1;
        faiss::VectorIOWriter w;
        faiss::write_index(idx, &w);
        out->swap(w.data);
        return KN_OK;
    });
}

/* ---- on-disk lists ---- */

/* Buffered write(2) to one file, so that millions of short lists cost few system calls. */
struct FileWriter {
    int fd = -1;
    std::string path;   /* the file's name in messages; the bytes go to its temporary (file_temp_path) */
    std::vector<uint8_t> buf;
    size_t used = 0;
    uint64_t written = 0;
    int put(const void *p, size_t n) {
        if (used + n > buf.size()) {
            int rc = flush();
            if (rc != KN_OK) return rc;
            if (n > buf.size()) {
                written += n;
                return file_write_full(fd, p, n, path.c_str());
            }
        }
        memcpy(buf.data() + used, p, n);
        used += n;
        written += n;
        return KN_OK;
    }
    int flush() {
        int rc = file_write_full(fd, buf.data(), used, path.c_str());
        used = 0;
        return rc;
    }
};

/* What one source of lists is called in messages (its file), and the lists. */
struct ListSource {
    const InvertedLists *lists;
    std::string name;
};

/* Checks, when `rows` >= 0, that the ids of list `list` from source `s` are in [0, rows), seen nowhere
 * before, and above every id this list received from earlier sources (`last`, in and out). */
static int check_rows(const idx_t *ids, size_t n, int64_t rows, std::vector<uint64_t> *seen, idx_t *last,
                      const ListSource &s, size_t list) {
    for (size_t i = 0; i < n; i++) {
        idx_t id;
        memcpy(&id, ids + i, sizeof id); /* lists mapped from an index file are not 8-byte aligned */
        if (id < 0 || id >= rows)
            return kn_error(KN_EMISMATCH, "%s: id %lld in list %zu is outside the merged rows 0..%lld", s.name.c_str(),
                            (long long)id, list, (long long)rows - 1);
        uint64_t bit = 1ull << (id & 63);
        if ((*seen)[id >> 6] & bit)
            return kn_error(KN_EMISMATCH, "%s: id %lld appears a second time (shards overlap)", s.name.c_str(), (long long)id);
        if (id <= *last)
            return kn_error(KN_EMISMATCH,
                            "%s: id %lld in list %zu comes after id %lld of an earlier shard (shards must be given in row order)",
                            s.name.c_str(), (long long)id, list, (long long)*last);
        (*seen)[id >> 6] |= bit;
        *last = id;
    }
    return KN_OK;
}

/* Streams the lists of every source, concatenated list by list, into `path` (through a temporary + fsync +
 * rename), and describes the result in od (offset, size, capacity of each list; totsize). With rows >= 0
 * the ids must be each of 0 .. rows-1 exactly once and ascending within each list (see check_rows). */
static int write_ivfdata(const std::vector<ListSource> &src, int64_t rows, OnDiskInvertedLists *od, const char *path) {
    const size_t nlist = od->nlist, code_size = od->code_size;
    FileWriter w;
    w.path = path;
    char tmp[PATH_MAX];
    if (file_temp_path(tmp, sizeof tmp, path) != KN_OK) return kn_error(KN_EINVAL, "%s: path too long", path);
    std::vector<uint64_t> seen;
    int rc = guarded(KN_ENOMEM, path, "allocating the merge buffers", [&]() -> int {
        w.buf.resize(16u << 20);
        if (rows >= 0) seen.assign((size_t)rows / 64 + 1, 0);
        return KN_OK;
    });
    if (rc != KN_OK) return rc;
    w.fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (w.fd < 0) return kn_error_errno("%s: cannot create (as %s)", path, tmp);
    for (size_t l = 0; l < nlist && rc == KN_OK; l++) {
        OnDiskInvertedLists::List &list = od->lists[l];
        list.offset = (size_t)w.written;
        list.size = 0;
        for (const ListSource &s : src) list.size += s.lists->list_size(l);
        list.capacity = list.size;
        rc = guarded(KN_EIO, src.empty() ? std::string(path) : src[0].name, "reading the inverted lists", [&]() -> int {
            for (const ListSource &s : src) {
                size_t n = s.lists->list_size(l);
                if (n == 0) continue;
                InvertedLists::ScopedCodes codes(s.lists, l);
                int r = w.put(codes.get(), n * code_size);
                if (r != KN_OK) return r;
            }
            idx_t last = -1;
            for (const ListSource &s : src) {
                size_t n = s.lists->list_size(l);
                if (n == 0) continue;
                InvertedLists::ScopedIds ids(s.lists, l);
                int r = rows >= 0 ? check_rows(ids.get(), n, rows, &seen, &last, s, l) : KN_OK;
                if (r == KN_OK) r = w.put(ids.get(), n * sizeof(idx_t));
                if (r != KN_OK) return r;
            }
            return KN_OK;
        });
    }
    if (rc == KN_OK) rc = w.flush();
    if (rc == KN_OK && fsync(w.fd) != 0) rc = kn_error_errno("%s: fsync failed", path);
    if (close(w.fd) != 0 && rc == KN_OK) rc = kn_error_errno("%s: write failed", path);
    if (rc == KN_OK && rename(tmp, path) != 0) rc = kn_error_errno("%s: cannot rename %s into place", path, tmp);
    if (rc != KN_OK) {
        unlink(tmp);
        return rc;
    }
    od->totsize = (size_t)w.written;
    return KN_OK;
}

/* Checks that every list of od lies inside the first `avail` bytes of its file, so that no search can touch
 * a page past the end of a mapping (SIGBUS). */
static int check_lists_fit(const OnDiskInvertedLists *od, size_t avail, const std::string &file) {
    const size_t entry = od->code_size + sizeof(idx_t);
    for (size_t l = 0; l < od->nlist; l++) {
        const OnDiskInvertedLists::List &list = od->lists[l];
        if (list.size > list.capacity)
            return kn_error(KN_EFORMAT, "%s: list %zu claims %zu entries in room for %zu", file.c_str(), l, list.size,
                            list.capacity);
        if (list.capacity == 0) continue;
        if (list.offset > avail || list.capacity > (avail - list.offset) / entry)
            return kn_error(KN_EFORMAT,
                            "%s: list %zu (%zu entries at byte %zu) runs past the end of the file (%zu bytes): truncated",
                            file.c_str(), l, list.capacity, list.offset, avail);
    }
    return KN_OK;
}

/* Finds, checks and maps the ivfdata file of an on-disk index read with IO_FLAG_SKIP_IVF_DATA. */
static int map_ondisk_lists(KnnIndex *ix, OnDiskInvertedLists *od) {
    const std::string stored = od->filename;
    if (stored.empty()) return kn_error(KN_EFORMAT, "%s: on-disk inverted lists without a file name", ix->name.c_str());
    std::string first = stored[0] == '/' ? stored : dir_of(ix->name) + "/" + stored;
    std::string beside = dir_of(ix->name) + "/" + base_of(stored);
    struct stat st;
    std::string found;
    if (stat(first.c_str(), &st) == 0) found = first;
    else if (stat(beside.c_str(), &st) == 0) found = beside;
    else
        return kn_error(KN_ENOTFOUND, "%s: its inverted-list file %s does not exist (nor %s beside the index)", ix->name.c_str(),
                        first.c_str(), beside.c_str());
    if (!S_ISREG(st.st_mode)) return kn_error(KN_EINVAL, "%s: not a regular file", found.c_str());
    std::string abs;
    int rc = absolute_path(found, &abs);
    if (rc != KN_OK) return rc;
    if (od->nlist != ix->ivf->nlist || od->code_size != ix->ivf->code_size)
        return kn_error(KN_EFORMAT, "%s: its inverted lists (%zu lists of %zu-byte codes) do not fit the index (%zu, %zu)",
                        ix->name.c_str(), od->nlist, od->code_size, ix->ivf->nlist, ix->ivf->code_size);
    if ((uint64_t)st.st_size < od->totsize)
        return kn_error(KN_EFORMAT, "%s: %llu bytes, but the index %s expects %zu: truncated", abs.c_str(),
                        (unsigned long long)st.st_size, ix->name.c_str(), od->totsize);
    rc = check_lists_fit(od, od->totsize, abs);
    if (rc != KN_OK) return rc;
    od->filename = abs;
    od->read_only = true;
    ix->ivfdata = abs;
    ix->read_only = true;
    if (od->totsize == 0) return KN_OK; /* no entries at all: nothing to map (mmap of 0 bytes fails) */
    return guarded(KN_EIO, abs, "mapping the inverted lists", [&]() -> int {
        od->do_mmap();
        return KN_OK;
    });
}

/* Replaces lists mapped from the index file by a copy in memory (a read without INDEX_READ_MMAP). */
static int load_mapped_lists(KnnIndex *ix, const OnDiskInvertedLists *od) {
    return guarded(KN_EIO, ix->name, "loading the inverted lists", [&]() -> int {
        std::unique_ptr<faiss::ArrayInvertedLists> mem(new faiss::ArrayInvertedLists(od->nlist, od->code_size));
        for (size_t l = 0; l < od->nlist; l++) {
            size_t n = od->list_size(l);
            if (n) mem->add_entries(l, n, od->get_ids(l), od->get_codes(l));
        }
        ix->ivf->replace_invlists(mem.release(), true);
        return KN_OK;
    });
}

/* ---- creating, reading, freeing ---- */

extern "C" int index_create(KnnIndex **out, int dim, const char *factory) {
    if (!out) return kn_error(KN_EINVAL, "index_create: no output handle");
    *out = nullptr;
    if (!factory || !*factory) return kn_error(KN_EINVAL, "index_create: empty factory string");
    if (dim <= 0) return kn_error(KN_EINVAL, "index '%s': dimension %d must be positive", factory, dim);
    std::unique_ptr<KnnIndex> ix(new (std::nothrow) KnnIndex);
    if (!ix) return kn_error(KN_ENOMEM, "index '%s': out of memory", factory);
    ix->name = std::string("index '") + factory + "'";
    int rc = guarded(KN_EINVAL, ix->name, "Faiss rejects the factory string", [&]() -> int {
        ix->faiss = faiss::index_factory(dim, factory, faiss::METRIC_L2);
        return KN_OK;
    });
    if (rc != KN_OK) return rc;
    ix->ivf = find_ivf(ix->faiss);
    skip_polysemous_training(ix->faiss);
    *out = ix.release();
    return KN_OK;
}

extern "C" int index_read(KnnIndex **out, const char *path, unsigned flags) {
    if (!out) return kn_error(KN_EINVAL, "index_read: no output handle");
    *out = nullptr;
    if (!path || !*path) return kn_error(KN_EINVAL, "index_read: empty path");
    if (flags & ~(unsigned)INDEX_READ_MMAP) return kn_error(KN_EINVAL, "%s: unknown read flags 0x%x", path, flags);
    struct stat st;
    int rc = stat_regular(path, &st);
    if (rc != KN_OK) return rc;
    std::unique_ptr<KnnIndex> ix(new (std::nothrow) KnnIndex);
    if (!ix) return kn_error(KN_ENOMEM, "%s: out of memory", path);
    ix->name = path;
    /* Read with the lists mapped (array lists) or not yet mapped (on-disk lists), whatever the caller
     * asked, so that their extent can be checked against the files before anything touches them. */
    rc = guarded(KN_EFORMAT, path, "not a readable Faiss index", [&]() -> int {
        ix->faiss = faiss::read_index(path, faiss::IO_FLAG_MMAP | faiss::IO_FLAG_READ_ONLY);
        return KN_OK;
    });
    if (rc != KN_OK) return rc;
    ix->ivf = find_ivf(ix->faiss);
    if (ix->ivf) {
        IndexIVF *ivf = ix->ivf;
        if (!ivf->invlists) return kn_error(KN_EFORMAT, "%s: the IVF index has no inverted lists stored", path);
        if (auto *od = dynamic_cast<OnDiskInvertedLists *>(ivf->invlists)) {
            rc = check_ondisk_capable(ivf, ix->name);
            if (rc != KN_OK) return rc;
            if (od->ptr == nullptr) {
                rc = map_ondisk_lists(ix.get(), od);
            } else {
                rc = check_lists_fit(od, od->totsize, path);
                if (rc == KN_OK && (flags & INDEX_READ_MMAP)) ix->mapped = ix->read_only = true;
                else if (rc == KN_OK) rc = load_mapped_lists(ix.get(), od);
            }
            if (rc != KN_OK) return rc;
        }
        size_t sum = 0;
        for (size_t l = 0; l < ivf->nlist; l++) sum += ivf->invlists->list_size(l);
        if (sum != (size_t)ivf->ntotal)
            return kn_error(KN_EFORMAT, "%s: the lists hold %zu entries, the index says %lld", path, sum, (long long)ivf->ntotal);
    }
    *out = ix.release();
    return KN_OK;
}

extern "C" void index_free(KnnIndex *index) { delete index; }

/* ---- what it is ---- */

extern "C" int index_dim(const KnnIndex *index) { return index->faiss->d; }
extern "C" int64_t index_ntotal(const KnnIndex *index) { return index->faiss->ntotal; }
extern "C" int index_is_trained(const KnnIndex *index) { return index->faiss->is_trained; }
extern "C" int index_is_read_only(const KnnIndex *index) { return index->read_only; }
extern "C" int64_t index_nlist(const KnnIndex *index) { return index->ivf ? (int64_t)index->ivf->nlist : 0; }
extern "C" int index_nprobe(const KnnIndex *index) { return index->ivf ? (int)index->ivf->nprobe : 0; }

extern "C" void index_describe(const KnnIndex *index, char *buf, size_t cap) {
    if (!buf || cap == 0) return;
    std::string s;
    try {
        s = type_name(index->faiss) + " d=" + std::to_string(index->faiss->d) +
            " ntotal=" + std::to_string(index->faiss->ntotal) + (index->faiss->is_trained ? "" : " untrained");
        if (const IndexIVF *ivf = index->ivf) {
            s += " nlist=" + std::to_string(ivf->nlist) + " nprobe=" + std::to_string(ivf->nprobe) +
                 " code_size=" + std::to_string(ivf->code_size) + " lists=";
            s += !index->ivfdata.empty() ? "ondisk:" + index->ivfdata : index->mapped ? "mmap:" + index->name : "memory";
        }
    } catch (...) {
        s = "(out of memory)";
    }
    snprintf(buf, cap, "%s", s.c_str());
}

/* ---- building ---- */

extern "C" int64_t index_train_points_recommended(const KnnIndex *index) {
    return train_needs(index->faiss).recommended;
}

/* The argument checks every call that takes vectors makes before Faiss sees them. */
static int check_vectors(const KnnIndex *index, const char *fn, int64_t n, int d, const void *x) {
    if (!index) return kn_error(KN_EINVAL, "%s: no index", fn);
    const char *name = index->name.c_str();
    if (n < 0) return kn_error(KN_EINVAL, "%s: %s: negative count %lld", name, fn, (long long)n);
    if (d != index->faiss->d)
        return kn_error(KN_EMISMATCH, "%s: %s: vectors of dimension %d, the index has %d", name, fn, d, index->faiss->d);
    if (n > 0 && !x) return kn_error(KN_EINVAL, "%s: %s: no vectors", name, fn);
    if (n > INT64_MAX / d) return kn_error(KN_EINVAL, "%s: %s: %lld vectors overflow", name, fn, (long long)n);
    return KN_OK;
}

/* An IndexFlatL2 that reports k-means iterations: Faiss' Clustering::train searches the index it is given once
 * per iteration (IndexIVF::clustering_index for the coarse quantizer, ProductQuantizer::assign_index for each
 * PQ sub-quantizer), from the calling thread. Its nearest-centroid searches run on our GEMM (Centroids). */
struct IterationCounter : faiss::IndexFlatL2 {
    const KnMonitor *monitor;
    uint64_t *done;
    IterationCounter(int dim, const KnMonitor *m, uint64_t *counter) : faiss::IndexFlatL2(dim), monitor(m), done(counter) {}
    void search(idx_t n, const float *x, idx_t k, float *distances, idx_t *labels,
                const faiss::SearchParameters *params = nullptr) const override {
        if (k == 1 && !params && ntotal > 0) { /* k-means' assignment step: on our GEMM */
            Centroids c;
            c.set(get_xb(), (int)ntotal, (int)d, omp_get_max_threads());
            c.nearest(n, x, distances, labels, omp_get_max_threads());
        } else {
            faiss::IndexFlatL2::search(n, x, k, distances, labels, params);
        }
        monitor_progress(monitor, ++*done, 0);
    }
};

/* The PQ of an index whose training runs k-means per sub-quantizer with assign_index, or NULL. */
static faiss::ProductQuantizer *trained_pq(Index *idx) {
    faiss::ProductQuantizer *pq = nullptr;
    if (auto *pre = dynamic_cast<faiss::IndexPreTransform *>(idx)) idx = pre->index;
    if (auto *ivfpq = dynamic_cast<faiss::IndexIVFPQ *>(find_ivf(idx))) pq = &ivfpq->pq;
    else if (auto *ipq = dynamic_cast<faiss::IndexPQ *>(idx)) pq = &ipq->pq;
    if (!pq || pq->assign_index || pq->train_type == faiss::ProductQuantizer::Train_shared) return nullptr;
    return pq;
}

extern "C" int index_train(KnnIndex *index, int64_t n, int d, const float *x) { return index_train_monitored(index, n, d, x, nullptr); }

extern "C" int index_train_monitored(KnnIndex *index, int64_t n, int d, const float *x, const KnMonitor *monitor) {
    int rc = check_vectors(index, "train", n, d, x);
    if (rc != KN_OK) return rc;
    const char *name = index->name.c_str();
    if (index->faiss->is_trained) return kn_error(KN_EINVAL, "%s: already trained", name);
    TrainNeeds needs = train_needs(index->faiss);
    if (n < needs.hard || n == 0)
        return kn_error(KN_EINVAL, "%s: %lld training points, %s needs at least %lld (Faiss recommends %lld)", name,
                        (long long)n, needs.what.empty() ? "training" : needs.what.c_str(),
                        (long long)std::max<int64_t>(needs.hard, 1),
                        (long long)needs.recommended);
    std::vector<std::unique_ptr<faiss::ProductQuantizer>> opq_pqs;
    /* the k-means runs whose iterations we can count: the IVF's coarse quantizer (unless it trains alone or
     * is trained already), and a PQ's sub-quantizers */
    IndexIVF *ivf = find_ivf(index->faiss);
    if (ivf && (ivf->clustering_index || ivf->quantizer_trains_alone != 0 ||
                (ivf->quantizer->is_trained && ivf->quantizer->ntotal == (idx_t)ivf->nlist)))
        ivf = nullptr;
    faiss::ProductQuantizer *pq = trained_pq(index->faiss);
    uint64_t total = 0, done = 0;
    if (ivf) total += (uint64_t)ivf->cp.niter * (uint64_t)ivf->cp.nredo;
    if (pq) total += (uint64_t)pq->cp.niter * (uint64_t)pq->cp.nredo * pq->M;
    std::unique_ptr<IterationCounter> ivf_counter, pq_counter;
    rc = guarded(KN_EINVAL, index->name, "training failed", [&]() -> int {
        if (ivf) ivf->clustering_index = (ivf_counter = std::make_unique<IterationCounter>(ivf->d, monitor, &done)).get();
        if (pq) pq->assign_index = (pq_counter = std::make_unique<IterationCounter>((int)pq->dsub, monitor, &done)).get();
        if (total) monitor_begin(monitor, "index k-means", "iterations", total, 0);
        silence_training_warnings(index->faiss, &opq_pqs);
        index->faiss->train(n, x);
        return KN_OK;
    });
    if (ivf) ivf->clustering_index = nullptr;
    if (pq) pq->assign_index = nullptr;
    if (total) monitor_end(monitor, done, 0);
    return_opq_pqs(index->faiss, opq_pqs);
    return rc;
}

/* ---- adding ---- */

/* Adding to an IVF spends most of its time finding each vector's nearest centroid: 2 nlist d flops a vector
 * (at 107 M vectors and IVF16384, 2.7e15). Faiss does it with one sgemm per block, and Debian's OpenBLAS runs
 * its Haswell kernels at about half of what our GEMM reaches on AVX-512 machines. So for an IVF whose coarse
 * quantizer is a flat L2 index and which is the whole index (no transform in front, no IDMap or refine
 * around it), we find the lists ourselves and hand them to add_core, which encodes as add would (IVF-PQ, IVF-Flat);
 * searches find the lists to probe the same way (search_probed). */
static bool coarse_on_gemm(const KnnIndex *index) {
    const IndexIVF *ivf = index->ivf;
    if (!ivf || index->faiss != ivf || ivf->metric_type != faiss::METRIC_L2) return false;
    /* the kinds whose add_core encodes like their add (not fast-scan, which interleaves in add_with_ids) */
    if (typeid(*ivf) != typeid(faiss::IndexIVFPQ) && typeid(*ivf) != typeid(faiss::IndexIVFFlat)) return false;
    auto *flat = dynamic_cast<const faiss::IndexFlat *>(ivf->quantizer);
    return flat && flat->metric_type == faiss::METRIC_L2 && flat->ntotal == (idx_t)ivf->nlist && ivf->nlist > 0;
}

/* An IVF-PQ (of coarse_on_gemm's kind) whose codes PqEncoder makes: 8-bit codes. */
static const faiss::IndexIVFPQ *pq_on_gemm(const KnnIndex *index) {
    if (!coarse_on_gemm(index) || typeid(*index->ivf) != typeid(faiss::IndexIVFPQ)) return nullptr;
    auto *ivfpq = static_cast<const faiss::IndexIVFPQ *>(index->ivf);
    return ivfpq->pq.nbits == 8 ? ivfpq : nullptr;
}

/* The IVF's centroids, packed once (the quantizer and the product quantizer do not change after training). */
static const Centroids &coarse_ready(const KnnIndex *cindex) {
    KnnIndex *index = const_cast<KnnIndex *>(cindex); /* the cache only */
    std::lock_guard<std::mutex> hold(index->coarse_lock);
    const int nlist = (int)index->ivf->nlist;
    if (index->coarse.n != nlist) {
        index->coarse.set(dynamic_cast<faiss::IndexFlat *>(index->ivf->quantizer)->get_xb(), nlist, (int)index->ivf->d, omp_get_max_threads());
        if (const faiss::IndexIVFPQ *ivfpq = pq_on_gemm(index)) index->pq.set(ivfpq->pq, omp_get_max_threads());
    }
    return index->coarse;
}

/* IndexIVFPQ::add_core with PqEncoder's codes: each row's residual to its list's centroid (Faiss'
 * compute_residual, x - c), its code, then the entries appended to their lists and the direct map in row
 * order, as Faiss appends them. */
static void add_ivfpq_encoded(KnnIndex *index, int64_t n, const float *x, const idx_t *xids, const idx_t *lists, int nthreads) {
    auto *ivf = static_cast<faiss::IndexIVFPQ *>(index->ivf);
    ivf->direct_map.check_can_add(xids);
    const int d = (int)ivf->d;
    const size_t cs = ivf->code_size;
    const float *centroids = dynamic_cast<faiss::IndexFlat *>(ivf->quantizer)->get_xb();
    const int64_t block = std::min<int64_t>(16384, n);
    std::vector<float> residuals(ivf->by_residual ? (size_t)block * d : 0);
    std::vector<uint8_t> codes((size_t)block * cs);
    const idx_t first = ivf->ntotal;
    for (int64_t b = 0; b < n; b += block) {
        const int64_t m = std::min(block, n - b);
        const float *rows = x + (size_t)b * d;
        if (ivf->by_residual) {
#pragma omp parallel for num_threads(nthreads) schedule(static)
            for (int64_t r = 0; r < m; r++) {
                const idx_t key = lists[b + r];
                const float *xr = rows + (size_t)r * d, *c = centroids + (size_t)(key < 0 ? 0 : key) * d;
                float *res = residuals.data() + (size_t)r * d;
                for (int j = 0; j < d; j++) res[j] = xr[j] - c[j];
            }
            rows = residuals.data();
        }
        index->pq.encode(m, rows, codes.data(), nthreads);
        for (int64_t r = 0; r < m; r++) {
            const idx_t key = lists[b + r], id = xids ? xids[b + r] : first + b + r;
            if (key < 0) {
                ivf->direct_map.add_single_id(id, -1, 0);
                continue;
            }
            const size_t offset = ivf->invlists->add_entry((size_t)key, id, codes.data() + (size_t)r * cs);
            ivf->direct_map.add_single_id(id, key, offset);
        }
    }
    ivf->ntotal += n;
}

/* An IVF search with the lists to probe found here (Centroids, one thread): the nprobe nearest centroids
 * of each query in Faiss' order (distance, then list number), then Faiss' search_preassigned. Debian's Faiss
 * finds them with a scalar loop for fewer than 20 queries (every single query of `generate`: 1.8 ms of
 * IVF4096's 1.9 at 768 dimensions) and OpenBLAS's Haswell sgemm for more. */
static void search_probed(const KnnIndex *index, int64_t n, const float *q, int k, float *dist, idx_t *ids) {
    IndexIVF *ivf = index->ivf;
    const int d = (int)ivf->d, nlist = (int)ivf->nlist, nprobe = (int)std::min<size_t>(ivf->nprobe, ivf->nlist);
    const Centroids &coarse = coarse_ready(index);
    const int64_t block = coarse.block();
    const int64_t nb = std::min(block, n);
    std::vector<float> dis((size_t)nb * nlist), cdis((size_t)nb * nprobe);
    std::vector<idx_t> lists((size_t)nb * nprobe);
    std::vector<int> order((size_t)nlist);
    for (int64_t b = 0; b < n; b += block) {
        const int m = (int)std::min(block, n - b);
        coarse.distances(m, q + (size_t)b * d, dis.data(), 1);
        for (int r = 0; r < m; r++) {
            const float *row = dis.data() + (size_t)r * nlist;
            for (int j = 0; j < nlist; j++) order[(size_t)j] = j;
            std::partial_sort(order.begin(), order.begin() + nprobe, order.end(),
                              [row](int a, int c) { return row[a] < row[c] || (row[a] == row[c] && a < c); });
            for (int j = 0; j < nprobe; j++) {
                lists[(size_t)r * nprobe + j] = order[(size_t)j];
                cdis[(size_t)r * nprobe + j] = row[order[(size_t)j]];
            }
        }
        ivf->invlists->prefetch_lists(lists.data(), m * nprobe);
        ivf->search_preassigned(m, q + (size_t)b * d, k, lists.data(), cdis.data(), dist + (size_t)b * k, ids + (size_t)b * k, false);
    }
}

extern "C" int index_add(KnnIndex *index, int64_t n, int d, const float *x) {
    if (!index) return kn_error(KN_EINVAL, "add: no index");
    return index_add_range(index, index->faiss->ntotal, n, d, x);
}

extern "C" int index_add_range(KnnIndex *index, int64_t first_id, int64_t n, int d, const float *x) {
    int rc = check_vectors(index, "add", n, d, x);
    if (rc != KN_OK) return rc;
    const char *name = index->name.c_str();
    if (first_id < 0 || first_id > INT64_MAX - n)
        return kn_error(KN_EINVAL, "%s: add: first id %lld out of range", name, (long long)first_id);
    if (!index->faiss->is_trained) return kn_error(KN_EINVAL, "%s: add: the index is not trained", name);
    if (index->read_only)
        return kn_error(KN_EINVAL,
                        "%s: add: the index's lists are memory-mapped and read-only "
                        "(read it without INDEX_READ_MMAP, or build shards and merge)",
                        name);
    if (n == 0) return KN_OK;
    if (coarse_on_gemm(index))
        return guarded(KN_EINVAL, index->name, "adding vectors failed", [&]() -> int {
            std::vector<idx_t> lists((size_t)n), ids;
            coarse_ready(index).nearest(n, x, nullptr, lists.data(), omp_get_max_threads());
            if (first_id != index->faiss->ntotal) {
                ids.resize((size_t)n);
                for (int64_t i = 0; i < n; i++) ids[(size_t)i] = first_id + i;
            }
            if (pq_on_gemm(index))
                add_ivfpq_encoded(index, n, x, ids.empty() ? nullptr : ids.data(), lists.data(), omp_get_max_threads());
            else
                index->ivf->add_core(n, x, ids.empty() ? nullptr : ids.data(), lists.data());
            return KN_OK;
        });
    if (first_id == index->faiss->ntotal)
        return guarded(KN_EINVAL, index->name, "adding vectors failed", [&]() -> int {
            index->faiss->add(n, x);
            return KN_OK;
        });
    const char *doing = "adding vectors with ids failed (this index type keeps rows in order: ids must continue at ntotal)";
    return guarded(KN_EINVAL, index->name, doing, [&]() -> int {
        std::vector<idx_t> ids((size_t)n);
        for (int64_t i = 0; i < n; i++) ids[(size_t)i] = first_id + i;
        index->faiss->add_with_ids(n, x, ids.data());
        return KN_OK;
    });
}

/* ---- searching ---- */

extern "C" int index_set_nprobe(KnnIndex *index, int nprobe) {
    if (!index) return kn_error(KN_EINVAL, "set_nprobe: no index");
    if (nprobe <= 0) return kn_error(KN_EINVAL, "%s: nprobe %d must be positive", index->name.c_str(), nprobe);
    if (index->ivf) index->ivf->nprobe = (size_t)nprobe;
    return KN_OK;
}

enum { SEARCH_PROBE_BYTES = 8 << 20, SEARCH_BLAS_QUERIES = 20 };

extern "C" const char *index_name(const KnnIndex *index) { return index->name.c_str(); }

extern "C" int index_search(const KnnIndex *index, int64_t nq, int d, const float *q, int k, float *dist, int64_t *ids) {
    int rc = check_vectors(index, "search", nq, d, q);
    if (rc != KN_OK) return rc;
    const char *name = index->name.c_str();
    if (k <= 0) return kn_error(KN_EINVAL, "%s: search: k %d must be positive", name, k);
    if (nq > INT64_MAX / k) return kn_error(KN_EINVAL, "%s: search: %lld queries x k %d overflow", name, (long long)nq, k);
    if (nq > 0 && (!dist || !ids)) return kn_error(KN_EINVAL, "%s: search: no output arrays", name);
    if (!index->faiss->is_trained) return kn_error(KN_EINVAL, "%s: search: the index is not trained", name);
    if (index->faiss->ntotal == 0) return kn_error(KN_EINVAL, "%s: search: the index is empty", name);
    if (nq == 0) return KN_OK;
    /* Faiss' IVF search holds nq * nprobe list numbers and coarse distances (12 bytes each) at once: 2.4 GB
     * for 50,000 queries at nprobe 4096. Feeding it blocks of queries bounds that (tens of thousands of
     * queries a block at usual nprobe, so Faiss' threads still get large slices). */
    int64_t block = nq;
    if (index->ivf) block = std::max<int64_t>(1, SEARCH_PROBE_BYTES / (12 * (int64_t)std::max<size_t>(1, index->ivf->nprobe)));
    /* The same bits for any --threads: we split the queries among the threads ourselves and each chunk runs
     * Faiss and OpenBLAS on one thread. Left to them, Faiss' flat distances go through one sgemm over all
     * queries, and OpenBLAS's arithmetic for a query changes with the number of threads it splits it among
     * (and with OPENBLAS_CORETYPE). Every chunk holds SEARCH_BLAS_QUERIES queries or more, because Faiss uses
     * sgemm from 20 queries on and its own loops below: the path taken must not depend on the split either. */
    const int64_t chunks = std::min<int64_t>(omp_get_max_threads(), std::max<int64_t>(1, nq / SEARCH_BLAS_QUERIES));
    const bool on_gemm = coarse_on_gemm(index);
    if (on_gemm) coarse_ready(index);
    std::vector<int> codes((size_t)chunks, KN_OK);
    std::vector<std::string> messages((size_t)chunks);
#pragma omp parallel for num_threads((int)chunks) schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        omp_set_num_threads(1); /* this thread's task only: nested Faiss and OpenBLAS regions run on it alone */
        const int64_t c0 = nq * c / chunks, c1 = nq * (c + 1) / chunks;
        codes[(size_t)c] = guarded(KN_EINVAL, index->name, "search failed", [&]() -> int {
            for (int64_t i = c0; i < c1; i += block) {
                int64_t n = std::min(block, c1 - i);
                if (on_gemm) search_probed(index, n, q + i * d, k, dist + i * k, ids + i * k);
                else index->faiss->search(n, q + i * d, k, dist + i * k, ids + i * k);
            }
            return KN_OK;
        });
        if (codes[(size_t)c] != KN_OK) messages[(size_t)c] = kn_errmsg();
    }
    /* the message again in the calling thread: kn_error's is thread-local */
    for (int64_t c = 0; c < chunks; c++)
        if (codes[(size_t)c] != KN_OK) return kn_error(codes[(size_t)c], "%s", messages[(size_t)c].c_str());
    return KN_OK;
}

extern "C" int index_set_prefetch_threads(KnnIndex *index, int n) {
    if (!index) return kn_error(KN_EINVAL, "set_prefetch_threads: no index");
    if (n < 0) return kn_error(KN_EINVAL, "%s: prefetch threads %d must be >= 0", index->name.c_str(), n);
    if (index->ivf)
        if (auto *od = dynamic_cast<OnDiskInvertedLists *>(index->ivf->invlists)) od->prefetch_nthread = n;
    return KN_OK;
}

extern "C" int index_set_threads(int n) {
    if (n <= 0) return kn_error(KN_EINVAL, "threads: %d must be positive", n);
    omp_set_num_threads(n);
    return KN_OK;
}

/* ---- writing ---- */

extern "C" int index_write(const KnnIndex *index, const char *path) {
    if (!index) return kn_error(KN_EINVAL, "index_write: no index");
    if (!path || !*path) return kn_error(KN_EINVAL, "%s: index_write: empty path", index->name.c_str());
    /* Lists mapped from an index file are an OnDiskInvertedLists without a file name: Faiss would write
     * them as on-disk lists that point nowhere. */
    if (index->mapped)
        return kn_error(KN_EINVAL, "%s: cannot rewrite an index read with INDEX_READ_MMAP (read it without) to %s",
                        index->name.c_str(), path);
    return write_faiss_file(index->faiss, path, index->name);
}

/* Writes `lists` (with the absolute ivfdata name) and the index file that refers to them: idx with those
 * lists swapped in for the time of the write. */
static int write_ondisk(Index *idx, IndexIVF *ivf, const std::vector<ListSource> &src, int64_t rows, const char *index_path,
                        const char *ivfdata_arg, const std::string &name) {
    if (!index_path || !*index_path) return kn_error(KN_EINVAL, "%s: empty output index path", name.c_str());
    std::string ivfdata = ivfdata_arg && *ivfdata_arg ? ivfdata_arg : std::string(index_path) + ".ivfdata";
    std::string abs_ivfdata, abs_index;
    int rc = absolute_path(ivfdata, &abs_ivfdata);
    if (rc == KN_OK) rc = absolute_path(index_path, &abs_index);
    if (rc != KN_OK) return rc;
    if (abs_ivfdata == abs_index) return kn_error(KN_EINVAL, "%s: the index and its ivfdata file must differ", index_path);
    int64_t total = 0;
    for (const ListSource &s : src)
        for (size_t l = 0; l < ivf->nlist; l++) total += (int64_t)s.lists->list_size(l);
    if (rows >= 0 && total != rows)
        return kn_error(KN_EMISMATCH, "%s: the shards' lists hold %lld entries, their indexes say %lld", index_path,
                        (long long)total, (long long)rows);
    std::unique_ptr<OnDiskInvertedLists> od;
    rc = guarded(KN_ENOMEM, name, "allocating on-disk lists", [&]() -> int {
        od.reset(new OnDiskInvertedLists(ivf->nlist, ivf->code_size, abs_ivfdata.c_str()));
        return KN_OK;
    });
    if (rc == KN_OK) rc = write_ivfdata(src, rows, od.get(), abs_ivfdata.c_str());
    if (rc != KN_OK) return rc;
    rc = guarded(KN_EIO, name, "writing the on-disk index", [&]() -> int {
        ListsSwap swap(idx, ivf, od.get(), total);
        return write_faiss_file(idx, index_path, name);
    });
    return rc;
}

extern "C" int index_check_ondisk(const KnnIndex *index) {
    IndexIVF *ivf = listed_ivf(index->faiss);
    if (!ivf)
        return kn_error(KN_EINVAL, "%s: only an IVF index (optionally behind a transform such as OPQ) can keep its lists on disk",
                        index->name.c_str());
    return check_ondisk_capable(ivf, index->name);
}

extern "C" int index_to_ondisk(KnnIndex *index, const char *index_path, const char *ivfdata_path) {
    if (!index) return kn_error(KN_EINVAL, "index_to_ondisk: no index");
    int rc = index_check_ondisk(index);
    if (rc != KN_OK) return rc;
    IndexIVF *ivf = listed_ivf(index->faiss);
    std::vector<ListSource> src{{ivf->invlists, index->name}};
    return write_ondisk(index->faiss, ivf, src, -1, index_path, ivfdata_path, index->name);
}

typedef std::unique_ptr<KnnIndex, void (*)(KnnIndex *)> IndexPtr;

extern "C" int index_merge_ondisk(const char *trained_path, const char *const *shard_paths, int nshards,
                                  const char *out_index, const char *out_ivfdata) {
    if (!trained_path || !shard_paths || nshards <= 0)
        return kn_error(KN_EINVAL, "merge: need a trained index and at least one shard (got %d)", nshards);
    KnnIndex *raw = nullptr;
    int rc = index_read(&raw, trained_path, INDEX_READ_MMAP);
    if (rc != KN_OK) return rc;
    IndexPtr trained(raw, index_free);
    IndexIVF *ivf = listed_ivf(trained->faiss);
    if (!ivf) return kn_error(KN_EINVAL, "%s: merge: not an IVF index (optionally behind a transform)", trained_path);
    rc = check_ondisk_capable(ivf, trained->name);
    if (rc != KN_OK) return rc;
    if (!trained->faiss->is_trained) return kn_error(KN_EINVAL, "%s: merge: the index is not trained", trained_path);
    if (trained->faiss->ntotal != 0)
        return kn_error(KN_EINVAL, "%s: merge: the trained index must be empty, it holds %lld vectors", trained_path,
                        (long long)trained->faiss->ntotal);
    std::vector<uint8_t> want, got;
    rc = skeleton(trained->faiss, ivf, trained->name, &want);
    if (rc != KN_OK) return rc;

    std::vector<IndexPtr> shards;
    std::vector<ListSource> src;
    int64_t rows = 0;
    for (int i = 0; i < nshards; i++) {
        if (!shard_paths[i]) return kn_error(KN_EINVAL, "merge: shard %d has no path", i);
        rc = index_read(&raw, shard_paths[i], INDEX_READ_MMAP);
        if (rc != KN_OK) return rc;
        shards.emplace_back(raw, index_free);
        IndexIVF *sivf = listed_ivf(raw->faiss);
        if (!sivf || type_name(raw->faiss) != type_name(trained->faiss) || type_name(sivf) != type_name(ivf))
            return kn_error(KN_EMISMATCH, "%s: a %s, the trained index %s is a %s", shard_paths[i], type_name(raw->faiss).c_str(),
                            trained_path, type_name(trained->faiss).c_str());
        rc = skeleton(raw->faiss, sivf, raw->name, &got);
        if (rc != KN_OK) return rc;
        if (got != want)
            return kn_error(KN_EMISMATCH, "%s: its quantizers differ from %s's: it was not built from that trained index",
                            shard_paths[i], trained_path);
        src.push_back({sivf->invlists, raw->name});
        rows += raw->faiss->ntotal;
    }
    return write_ondisk(trained->faiss, ivf, src, rows, out_index, out_ivfdata, trained->name);
}
