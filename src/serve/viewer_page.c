/* viewer_page.c — the viewer (web/index.html) embedded in the binary at build time, so that `knnlm serve` works
 * from any folder: serve_viewer_html[0 .. serve_viewer_html_end) are the file's bytes (a NUL follows them).
 * The Makefile rebuilds this object when the page changes (the assembler's .incbin is invisible to -MMD). */
__asm__(".pushsection .rodata\n"
        ".global serve_viewer_html\n"
        ".global serve_viewer_html_end\n"
        "serve_viewer_html:\n"
        ".incbin \"web/index.html\"\n"
        "serve_viewer_html_end:\n"
        ".byte 0\n"
        ".popsection\n");
