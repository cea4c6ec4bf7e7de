/* A process that burns one core in a function with a known name. */
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

volatile uint64_t sink;

__attribute__((noinline)) void hotloop_e2e_spin(void) {
  uint64_t x = 1;
  for (;;) {
    for (int i = 0; i < 1000000; i++) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    sink = x;
  }
}

int main(void) {
  printf("%d\n", (int)getpid());
  fflush(stdout);
  hotloop_e2e_spin();
  return 0;
}
