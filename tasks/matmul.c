/* C[M][N] = A[M][K] * B[K][N], row-major float, in the GotoBLAS/BLIS
 * shape:
 *
 *   for each NC-wide column block of B and C
 *     for each KC-deep slice of k:      pack B's KC x NC block into panels
 *       for each MC-tall row block:     pack A's MC x KC block into panels
 *         for each MR x NR micro-tile of C: the micro-kernel
 *
 * Knobs: MR rows by NV vectors of VW floats (NR = NV * VW columns) per
 * micro-tile, held in local accumulators; KU, how far the k loop is
 * unrolled; KC, MC, NC, the cache blocks (rounded down to whole
 * micro-tiles). Any M, N, K works with any knobs: packed panels are padded
 * with zeros and partial tiles of C are stored through an edge path.
 *
 * The kernel keeps its packing buffers in static memory sized from the
 * constants (no malloc, so it is not reentrant). No headers: tcc would look
 * for them on every compile. gcc and clang use vector extensions; tcc
 * accepts them but computes them wrongly, so it gets a scalar micro-kernel
 * (same blocking, same results). */

#define MM_MIN(a, b) ((a) < (b) ? (a) : (b))
#define MM_MAX(a, b) ((a) > (b) ? (a) : (b))
#define MM_NR (NV * VW)
/* Cache blocks: whole micro-tiles, never (much) larger than the problem,
 * so that a small problem needs little static memory. */
#define MM_KCB MM_MIN(KC, K)
#define MM_MCB MM_MIN(MM_MAX(MC / MR, 1) * MR, (M + MR - 1) / MR * MR)
#define MM_NCB MM_MIN(MM_MAX(NC / MM_NR, 1) * MM_NR, (N + MM_NR - 1) / MM_NR * MM_NR)

#ifdef __TINYC__
#define MM_ALIGNED
#define MM_UNROLL(n)
#else
#define MM_ALIGNED __attribute__((aligned(64)))
/* gcc does not expand a macro inside #pragma GCC unroll; _Pragma does. */
#define MM_PRAGMA(x) _Pragma(#x)
#define MM_UNROLL(n) MM_PRAGMA(GCC unroll n)
#endif

static float mm_bp[MM_KCB * MM_NCB] MM_ALIGNED;
static float mm_ap[MM_MCB * MM_KCB] MM_ALIGNED;

/* B's kc x nc block -> panels of NR columns: panel q holds (k, j) at
 * [q * kc * NR + k * NR + j], zero past column nc. */
static void mm_pack_b(long kc, long nc, const float *b, float *bp) {
  for (long j0 = 0; j0 < nc; j0 += MM_NR) {
    long w = MM_MIN((long)MM_NR, nc - j0);
    for (long k = 0; k < kc; k++) {
      const float *s = b + k * N + j0;
      float *d = bp + j0 * kc + k * MM_NR;
      for (long j = 0; j < w; j++) d[j] = s[j];
      for (long j = w; j < MM_NR; j++) d[j] = 0.0f;
    }
  }
}

/* A's mc x kc block -> panels of MR rows: panel p holds (i, k) at
 * [p * kc * MR + k * MR + i], zero past row mc. */
static void mm_pack_a(long mc, long kc, const float *a, float *ap) {
  for (long i0 = 0; i0 < mc; i0 += MR) {
    long h = MM_MIN((long)MR, mc - i0);
    float *d = ap + i0 * kc;
    for (long k = 0; k < kc; k++)
      for (long i = 0; i < MR; i++) d[k * MR + i] = i < h ? a[(i0 + i) * K + k] : 0.0f;
  }
}

/* Stores (first k slice) or adds a tile held in t[MR][NR] into the mr x nr
 * corner of C that exists. */
static void mm_store_edge(const float *t, float *c, long mr, long nr, int first) {
  for (long i = 0; i < mr; i++)
    for (long j = 0; j < nr; j++) {
      float v = t[i * MM_NR + j];
      c[i * N + j] = first ? v : c[i * N + j] + v;
    }
}

#ifdef __TINYC__

static void mm_kernel(long kc, const float *a, const float *b, float *c, long mr, long nr,
                      int first) {
  float acc[MR * MM_NR];
  for (long x = 0; x < MR * MM_NR; x++) acc[x] = 0.0f;
  for (long k = 0; k < kc; k++)
    for (long i = 0; i < MR; i++) {
      float ai = a[k * MR + i];
      for (long j = 0; j < MM_NR; j++) acc[i * MM_NR + j] += ai * b[k * MM_NR + j];
    }
  mm_store_edge(acc, c, mr, nr, first);
}

#else

/* The widest vector the target has, in floats. A VW wider than that is
 * held as several of them (VW 16 on AVX2: two 8-float registers): gcc
 * lowers a vector type wider than the target's through memory. */
#if defined(__AVX512F__)
#define MM_HW 16
#elif defined(__AVX__)
#define MM_HW 8
#elif defined(__SSE__) || defined(__ARM_NEON) || defined(__ALTIVEC__)
#define MM_HW 4
#else
#define MM_HW VW
#endif
#define MM_VL MM_MIN(VW, MM_HW)  /* floats per vector */
#define MM_NVL (MM_NR / MM_VL)   /* vectors per row of the micro-tile */

typedef float mm_v __attribute__((vector_size(MM_VL * 4)));
/* Rows of C are only float-aligned; gcc assumes the full alignment of a
 * vector type otherwise. */
typedef float mm_vu __attribute__((vector_size(MM_VL * 4), aligned(4)));

static inline __attribute__((always_inline)) void
mm_kernel(long kc, const float *restrict a, const float *restrict b, float *restrict c, long mr,
          long nr, int first) {
  mm_v acc[MR][MM_NVL];
  MM_UNROLL(64)
  for (int i = 0; i < MR; i++) {
    MM_UNROLL(64)
    for (int v = 0; v < MM_NVL; v++) acc[i][v] = (mm_v){0};
  }
  MM_UNROLL(KU)
  for (long k = 0; k < kc; k++) {
    const mm_v *bk = (const mm_v *)(b + k * MM_NR);
    MM_UNROLL(64)
    for (int i = 0; i < MR; i++) {
      /* A scalar times a vector: one broadcast load. (0 + a, a vector, is
       * an add and a shuffle per element, as 0 + -0 is not -0.) */
      float ai = a[k * MR + i];
      MM_UNROLL(64)
      for (int v = 0; v < MM_NVL; v++) acc[i][v] += ai * bk[v];
    }
  }
  if (mr == MR && nr == MM_NR) {
    MM_UNROLL(64)
    for (int i = 0; i < MR; i++) {
      MM_UNROLL(64)
      for (int v = 0; v < MM_NVL; v++) {
        mm_vu *cv = (mm_vu *)(c + i * N + v * MM_VL);
        *cv = first ? acc[i][v] : *cv + acc[i][v];
      }
    }
  } else {
    float t[MR * MM_NR] MM_ALIGNED;
    for (int i = 0; i < MR; i++)
      for (int v = 0; v < MM_NVL; v++) *(mm_v *)(t + i * MM_NR + v * MM_VL) = acc[i][v];
    mm_store_edge(t, c, mr, nr, first);
  }
}

#endif

void matmul(float *C, const float *A, const float *B) {
  for (long jc = 0; jc < N; jc += MM_NCB) {
    long nc = MM_MIN((long)MM_NCB, N - jc);
    for (long pc = 0; pc < K; pc += MM_KCB) {
      long kc = MM_MIN((long)MM_KCB, K - pc);
      mm_pack_b(kc, nc, B + pc * N + jc, mm_bp);
      for (long ic = 0; ic < M; ic += MM_MCB) {
        long mc = MM_MIN((long)MM_MCB, M - ic);
        mm_pack_a(mc, kc, A + ic * K + pc, mm_ap);
        for (long jr = 0; jr < nc; jr += MM_NR)
          for (long ir = 0; ir < mc; ir += MR)
            mm_kernel(kc, mm_ap + ir * kc, mm_bp + jr * kc, C + (ic + ir) * N + jc + jr,
                      MM_MIN((long)MR, mc - ir), MM_MIN((long)MM_NR, nc - jr), pc == 0);
      }
    }
  }
}

/* The obviously correct version the checker compares against; it sums in
 * double so that the tolerance measures the kernel's rounding only. */
void matmul_ref(float *C, const float *A, const float *B) {
  for (long i = 0; i < M; i++)
    for (long j = 0; j < N; j++) {
      double s = 0.0;
      for (long k = 0; k < K; k++) s += (double)A[i * K + k] * (double)B[k * N + j];
      C[i * N + j] = (float)s;
    }
}
