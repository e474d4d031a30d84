// What ships beside the binary stays true to it: the man page names every flag of every
// command's --help (and no other), and `offerd config --print` prints a config file that offerd
// reads back; a --config file's mistakes are one line and exit 2.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "process.hpp"

using namespace offerd::test;

namespace {

const std::string binary = OFFERD_BINARY;
const std::string man_page = std::string(OFFERD_SOURCE_DIR) + "/docs/offerd.1";

// Every `--name` in text (roff: `\-\-name\-part` reads as `--name-part`).
std::set<std::string> flags_in(std::string text, bool roff) {
    if (roff) text = std::regex_replace(text, std::regex(R"(\\-)"), "-");
    std::set<std::string> out;
    const std::regex flag(R"(--([a-z][a-z0-9-]*[a-z0-9]))");
    for (auto it = std::sregex_iterator(text.begin(), text.end(), flag); it != std::sregex_iterator(); ++it) out.insert((*it)[1]);
    return out;
}

// The flags of every command's --help, by command.
std::map<std::string, std::set<std::string>> help_flags() {
    std::map<std::string, std::set<std::string>> out;
    for (const char* command : {"serve", "stream", "generate", "report", "hash-key", "config"}) {
        auto r = run_process({binary, command, "--help"}, std::chrono::seconds(10));
        INFO(command << ": " << r.err);
        REQUIRE(r.exit_code == 0);
        out[command] = flags_in(r.out, false);
    }
    auto top = run_process({binary, "--help"}, std::chrono::seconds(10));
    REQUIRE(top.exit_code == 0);
    out["top"] = flags_in(top.out, false);
    return out;
}

std::string write_temp(const std::string& stem, const std::string& text) {
    const std::string path = temp_path(stem);
    std::ofstream(path, std::ios::trunc) << text;
    return path;
}

// `key = value` lines of a printed config, comments dropped.
std::map<std::string, std::string> settings(const std::string& text) {
    std::map<std::string, std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (line.empty() || line.front() == '#') continue;
        const auto eq = line.find(" = ");
        const auto hash = line.find("  # ");
        REQUIRE(eq != std::string::npos);
        out[line.substr(0, eq)] = line.substr(eq + 3, hash == std::string::npos ? std::string::npos : hash - eq - 3);
    }
    return out;
}

}  // namespace

TEST_CASE("every flag in the --help of every command appears in the man page", "[e2e]") {
    const auto man = flags_in(read_file(man_page), true);
    REQUIRE_FALSE(man.empty());
    for (const auto& [command, flags] : help_flags())
        for (const auto& f : flags) {
            INFO("offerd " << command << " --" << f << " is not in docs/offerd.1");
            CHECK(man.count(f) == 1);
        }
}

TEST_CASE("every flag the man page names is one offerd has", "[e2e]") {
    std::set<std::string> known;
    for (const auto& [command, flags] : help_flags()) known.insert(flags.begin(), flags.end());
    for (const auto& f : flags_in(read_file(man_page), true)) {
        INFO("docs/offerd.1 names --" << f << ", which no --help lists");
        CHECK(known.count(f) == 1);
    }
}

TEST_CASE("the man page is roff that groff reads without a warning", "[e2e]") {
    if (access("/usr/bin/groff", X_OK) != 0) {
        WARN("groff is not installed: the man page was not linted");
        return;
    }
    auto r = run_process({"/usr/bin/groff", "-man", "-ww", "-z", man_page}, std::chrono::seconds(20));
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.err.empty());
}

TEST_CASE("config --print prints a config file offerd reads back to the same settings", "[e2e]") {
    const std::string file = write_temp("e2e-conf", "# a comment\nmax-in-flight = 11\nthreads = 9\n");
    auto printed = run_process({"/usr/bin/env", "OFFERD_POOL_SIZE=8", binary, "config", "--print", "--config", file, "--threads", "3",
                                "--role", "orchestrator,prediction"},
                               std::chrono::seconds(10));
    INFO(printed.err);
    REQUIRE(printed.exit_code == 0);
    CHECK(printed.err.empty());
    CHECK(printed.out.find("\nthreads = 3  # command line\n") != std::string::npos);
    CHECK(printed.out.find("\npool-size = 8  # environment OFFERD_POOL_SIZE\n") != std::string::npos);
    CHECK(printed.out.find("\nmax-in-flight = 11  # " + file + ":2\n") != std::string::npos);
    CHECK(printed.out.find("\nhost = 127.0.0.1  # default\n") != std::string::npos);

    const std::string copy = write_temp("e2e-conf-printed", printed.out);
    auto again = run_process({binary, "config", "--print", "--config", copy}, std::chrono::seconds(10));
    INFO(again.err);
    REQUIRE(again.exit_code == 0);
    CHECK(settings(again.out) == settings(printed.out));
    std::remove(file.c_str());
    std::remove(copy.c_str());
}

TEST_CASE("serve with an unknown key in its config file is one line naming the key and line, exit 2", "[e2e]") {
    const std::string file = write_temp("e2e-conf-bad", "role = prediction\nprediction-port = 0\nthreds = 2\n");
    auto r = run_process({binary, "--config", file}, std::chrono::seconds(10));
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    CHECK(r.err == "offerd: " + file + ":3: unknown key 'threds' (see --help)\n");
    std::remove(file.c_str());
}

TEST_CASE("serve runs with the options of its config file", "[e2e]") {
    const std::string file = write_temp("e2e-conf-serve", "role = prediction\nprediction-port = 0\nthreads = 1\n");
    child_process server({binary, "--config", file});
    const auto line = server.read_line(std::chrono::seconds(10));
    REQUIRE(line);
    CHECK(line->find("offerd: prediction listening on http://127.0.0.1:") == 0);
    CHECK(server.stop(SIGTERM, std::chrono::seconds(10)) == 0);
    std::remove(file.c_str());
}
