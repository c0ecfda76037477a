/* out[N][M] = in[M][N] transposed, float: a memory-bound kernel. One of
 * the two sides is always read or written with a stride, so what matters
 * is which side the inner loop walks (ROWS_INNER) and how big a block of
 * TI x TJ elements is moved at once (the block's rows of both sides should
 * stay in cache). Its speed is the bytes it moves: the spec gives
 * "bytes", and ktune reports GB/s.
 *
 * Whole blocks take a path with compile-time trip counts (unrolled and
 * vectorized by gcc); the last block in each direction is cut short. No
 * headers: tcc would look for them on every compile. */

#define TP_MIN(a, b) ((a) < (b) ? (a) : (b))

static inline __attribute__((always_inline)) void
tp_block(float *restrict out, const float *restrict in, long i0, long j0, long ni, long nj) {
#if ROWS_INNER
  for (long j = 0; j < nj; j++)
    for (long i = 0; i < ni; i++) out[(j0 + j) * M + i0 + i] = in[(i0 + i) * N + j0 + j];
#else
  for (long i = 0; i < ni; i++)
    for (long j = 0; j < nj; j++) out[(j0 + j) * M + i0 + i] = in[(i0 + i) * N + j0 + j];
#endif
}

void transpose(float *out, const float *in) {
  for (long i0 = 0; i0 < M; i0 += TI)
    for (long j0 = 0; j0 < N; j0 += TJ) {
      if (i0 + TI <= M && j0 + TJ <= N)
        tp_block(out, in, i0, j0, TI, TJ);
      else
        tp_block(out, in, i0, j0, TP_MIN((long)TI, M - i0), TP_MIN((long)TJ, N - j0));
    }
}

/* The obviously correct version. */
void transpose_ref(float *out, const float *in) {
  for (long i = 0; i < M; i++)
    for (long j = 0; j < N; j++) out[j * M + i] = in[i * N + j];
}
