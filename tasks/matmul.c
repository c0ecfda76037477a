/* C[M][N] = A[M][K] * B[K][N], row-major float. Knobs: TI x TJ tiles of C,
 * TK-long slices of the k loop. Any size works with any tiles: the last
 * tile in each direction is cut short.
 *
 * No headers on purpose: tcc looks up every include path for them, which
 * costs more than compiling the kernel. Loop bounds are computed before
 * each loop because gcc does not vectorize `j < jj + TJ && j < N`. */

#define MM_MIN(a, b) ((a) < (b) ? (a) : (b))

void matmul(float *C, const float *A, const float *B) {
  for (long i = 0; i < (long)M * N; i++) C[i] = 0.0f;
  for (long ii = 0; ii < M; ii += TI) {
    long ie = MM_MIN(ii + TI, (long)M);
    for (long kk = 0; kk < K; kk += TK) {
      long ke = MM_MIN(kk + TK, (long)K);
      for (long jj = 0; jj < N; jj += TJ) {
        long je = MM_MIN(jj + TJ, (long)N);
        for (long i = ii; i < ie; i++) {
          float *c = C + i * N;
          for (long k = kk; k < ke; k++) {
            float a = A[i * K + k];
            const float *b = B + k * N;
            for (long j = jj; j < je; j++) c[j] += a * b[j];
          }
        }
      }
    }
  }
}

/* The obviously correct version the checker compares against. */
void matmul_ref(float *C, const float *A, const float *B) {
  for (long i = 0; i < M; i++)
    for (long j = 0; j < N; j++) {
      float s = 0.0f;
      for (long k = 0; k < K; k++) s += A[i * K + k] * B[k * N + j];
      C[i * N + j] = s;
    }
}
