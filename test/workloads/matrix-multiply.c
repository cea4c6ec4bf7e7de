/* Counterpart (legitimate compute): a numerical job multiplying dense matrices, like a batch
 * analytics or ML inference worker. It burns a core doing real arithmetic across many distinct
 * instructions and makes essentially no syscalls; it must not be flagged as a busy loop. */
#include <stdio.h>

#define N 192

static double a[N][N], b[N][N], c[N][N];

__attribute__((noinline)) static void fill_matrices(unsigned seed) {
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      seed = seed * 1103515245u + 12345u;
      a[i][j] = (double)(seed >> 16) / 65536.0;
      b[i][j] = (double)(seed & 0xffff) / 65536.0;
    }
}

__attribute__((noinline)) static void multiply_matrices(void) {
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      double sum = 0;
      for (int k = 0; k < N; k++) sum += a[i][k] * b[k][j];
      c[i][j] = sum;
    }
}

__attribute__((noinline)) static double trace_of_product(void) {
  double t = 0;
  for (int i = 0; i < N; i++) t += c[i][i];
  return t;
}

int main(void) {
  volatile double checksum = 0; /* keeps each product observable */
  for (unsigned round = 1;; round++) {
    fill_matrices(round);
    multiply_matrices();
    checksum += trace_of_product();
  }
  return 0;
}
