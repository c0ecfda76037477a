/* ktune report: the history as one self-contained HTML page. */
#ifndef KTUNE_CLI_REPORT_H
#define KTUNE_CLI_REPORT_H

int cmd_report(int argc, char **argv);

#endif
