/* The predictd subcommands. Each parses its own options (getopt_long), answers --help, and
 * returns the process exit status: 0 ok, 1 failure, 2 usage error. main.c turns a global
 * `--config FILE` given before the subcommand into the subcommand's own `--config FILE`. */
#ifndef PREDICTD_COMMANDS_H
#define PREDICTD_COMMANDS_H

#define PREDICTD_VERSION "0.1.0"

int cmd_serve(int argc, char **argv);    /* cli/cmd_serve.c */
int cmd_config(int argc, char **argv);   /* cli/main.c: config show [--docs] */
int cmd_import(int argc, char **argv);   /* cli/cmd_import.c */
int cmd_submit(int argc, char **argv);   /* cli/cmd_client.c */
int cmd_status(int argc, char **argv);   /* cli/cmd_client.c */
int cmd_results(int argc, char **argv);  /* cli/cmd_client.c */
int cmd_jobs(int argc, char **argv);     /* cli/cmd_client.c */
int cmd_model(int argc, char **argv);    /* cli/cmd_model.c: model check|bench FILE.onnx */

#endif
