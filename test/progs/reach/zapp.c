/* zapp: compresses and uncompresses a buffer N times with the system zlib (libz.so.1), so a
 * test can probe zlib's exported functions in a real Debian library. Never calls
 * inflateGetHeader. Prints its pid. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 3;
  unsigned char src[4096], comp[8192], back[4096];
  memset(src, 'z', sizeof src);
  for (int i = 0; i < n; i++) {
    uLongf clen = sizeof comp, blen = sizeof back;
    if (compress2(comp, &clen, src, sizeof src, 6) != Z_OK) return 1;
    if (uncompress(back, &blen, comp, clen) != Z_OK || blen != sizeof src) return 2;
  }
  printf("zapp pid=%d rounds=%d\n", (int)getpid(), n);
  return 0;
}
