/* knnlm.c — the main() of knnlm: the commands of main.c, in one process. (knnlm-mpi's is in mpi_run.c.) */
#include "cli/cli.h"

int main(int argc, char **argv) { return cli_main(argc, argv); }
