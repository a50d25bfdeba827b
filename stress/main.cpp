#include <string>
#include <vector>

#include "stress/cli/cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return faultline::stress::cli_main(args);
}
