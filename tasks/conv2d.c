/* 3x3 convolution, stride 1, zero padding 1 (the output has the input's
 * height and width), NCHW float:
 *
 *   out[n][k][y][x] = sum over c, dy, dx of
 *                     in[n][c][y + dy - 1][x + dx - 1] * weight[k][c][dy][dx]
 *
 * Knobs: a tile of TK output channels by TH rows by TW columns is summed in
 * local accumulators over every input channel before it is stored once.
 * The constraints keep tiles whole (K % TK, H % TH, W % TW), so loop trip
 * counts are compile-time constants the compiler can unroll and vectorize.
 *
 * Each image is first copied into a static zero-bordered buffer, so the
 * inner loops need no bounds checks (no malloc; not reentrant). No
 * headers: tcc would look for them on every compile. */

#define CV_HP (H + 2)
#define CV_WP (W + 2)

static float cv_pad[C * CV_HP * CV_WP];

static void cv_pad_image(const float *img) {
  for (long c = 0; c < C; c++) {
    float *p = cv_pad + c * CV_HP * CV_WP;
    for (long x = 0; x < CV_WP; x++) p[x] = p[(CV_HP - 1) * CV_WP + x] = 0.0f;
    for (long y = 0; y < H; y++) {
      float *row = p + (y + 1) * CV_WP;
      const float *src = img + (c * H + y) * W;
      row[0] = row[W + 1] = 0.0f;
      for (long x = 0; x < W; x++) row[x + 1] = src[x];
    }
  }
}

/* One TK x TH x TW tile of the output. */
static void cv_tile(float *out, const float *weight, long k0, long y0, long x0) {
  float acc[TK][TH][TW];
  for (int k = 0; k < TK; k++)
    for (int y = 0; y < TH; y++)
      for (int x = 0; x < TW; x++) acc[k][y][x] = 0.0f;
  for (long c = 0; c < C; c++) {
    const float *p = cv_pad + c * CV_HP * CV_WP + y0 * CV_WP + x0;
    const float *w = weight + (k0 * C + c) * 9;
    for (int dy = 0; dy < 3; dy++)
      for (int dx = 0; dx < 3; dx++)
        for (int k = 0; k < TK; k++) {
          float wk = w[k * C * 9 + dy * 3 + dx];
          for (int y = 0; y < TH; y++) {
            const float *row = p + (y + dy) * CV_WP + dx;
            for (int x = 0; x < TW; x++) acc[k][y][x] += wk * row[x];
          }
        }
  }
  for (int k = 0; k < TK; k++)
    for (int y = 0; y < TH; y++)
      for (int x = 0; x < TW; x++) out[((k0 + k) * H + y0 + y) * W + x0 + x] = acc[k][y][x];
}

void conv2d(float *out, const float *in, const float *weight) {
  for (long n = 0; n < N; n++) {
    cv_pad_image(in + n * C * H * W);
    float *o = out + n * K * H * W;
    for (long k0 = 0; k0 < K; k0 += TK)
      for (long y0 = 0; y0 < H; y0 += TH)
        for (long x0 = 0; x0 < W; x0 += TW) cv_tile(o, weight, k0, y0, x0);
  }
}

/* The obviously correct version, with the padding as bounds checks. */
void conv2d_ref(float *out, const float *in, const float *weight) {
  for (long n = 0; n < N; n++)
    for (long k = 0; k < K; k++)
      for (long y = 0; y < H; y++)
        for (long x = 0; x < W; x++) {
          double s = 0.0;
          for (long c = 0; c < C; c++)
            for (long dy = 0; dy < 3; dy++)
              for (long dx = 0; dx < 3; dx++) {
                long iy = y + dy - 1, ix = x + dx - 1;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                s += (double)in[((n * C + c) * H + iy) * W + ix] *
                     (double)weight[((k * C + c) * 3 + dy) * 3 + dx];
              }
          out[((n * K + k) * H + y) * W + x] = (float)s;
        }
}
