/* The pod sandbox's process, as the kubelet's pause image has it: PID 1 of the pod's
 * namespaces, it holds them open, reaps the zombies of a shared PID namespace, and ends on
 * SIGTERM or SIGINT. Built static by tests/e2e/cri.sh (gcc -static). */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, 0, WNOHANG) > 0) {
  }
}

static void end(int sig) {
  (void)sig;
  _exit(0);
}

int main(void) {
  struct sigaction chld = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP | SA_RESTART};
  struct sigaction term = {.sa_handler = end};
  sigaction(SIGCHLD, &chld, 0);
  sigaction(SIGTERM, &term, 0);
  sigaction(SIGINT, &term, 0);
  for (;;)
    pause();
}
