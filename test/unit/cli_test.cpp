// Command-line parsing: every numeric flag and OFFERD_* value is range-checked with the range in
// the message, positional arguments are used or refused, never ignored; --config files and
// `offerd config --print`.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>

#include "offerd/app/cli.hpp"

using namespace offerd;

namespace {

env_lookup no_env() {
    return [](const char*) -> const char* { return nullptr; };
}

env_lookup env_of(std::map<std::string, std::string> vars) {
    return [vars = std::move(vars)](const char* name) -> const char* {
        auto it = vars.find(name);
        return it == vars.end() ? nullptr : it->second.c_str();
    };
}

template <class Config>
std::string refusal(const parsed_command<Config>& cmd) {
    CHECK_FALSE(cmd.config);
    CHECK(cmd.exit_code == 2);
    CHECK(cmd.message.find('\n') == std::string::npos);
    return cmd.message;
}

}  // namespace

TEST_CASE("a negative port is refused with the valid range instead of wrapping to 65535", "[unit]") {
    const auto msg = refusal(parse_serve_command({"--orchestrator-port", "-1"}, no_env()));
    CHECK(msg.find("offerd: --orchestrator-port: must be 0..65535, got -1") == 0);
    CHECK(refusal(parse_serve_command({"--member-data-port=65536"}, no_env())).find("--member-data-port: must be 0..65535, got 65536") !=
          std::string::npos);
}

TEST_CASE("negative sizes are refused for every unsigned serve flag", "[unit]") {
    for (const char* flag : {"--max-in-flight", "--admission-min-limit", "--pool-size", "--max-connections", "--threads", "--rate-burst"}) {
        INFO(flag);
        const auto msg = refusal(parse_serve_command({flag, "-1"}, no_env()));
        CHECK(msg.find(std::string(flag) + ": must be ") != std::string::npos);
        CHECK(msg.find(", got -1") != std::string::npos);
    }
}

TEST_CASE("an environment value out of range names the variable and the range", "[unit]") {
    const auto msg = refusal(parse_serve_command({}, env_of({{"OFFERD_THREADS", "-3"}})));
    CHECK(msg.find("OFFERD_THREADS: must be 0..256, got -3") != std::string::npos);
}

TEST_CASE("a flag wins over its environment variable, which is then not checked", "[unit]") {
    auto cmd = parse_serve_command({"--threads", "4"}, env_of({{"OFFERD_THREADS", "-3"}}));
    REQUIRE(cmd.config);
    CHECK(cmd.config->threads == 4);
}

TEST_CASE("values at the ends of a range are accepted and stored", "[unit]") {
    auto cmd = parse_serve_command({"--orchestrator-port", "65535", "--threads", "256", "--max-in-flight", "1", "--admission-min-limit", "1", "--retry-budget", "1",
                                    "--sched-slice-us", "0", "--upstream-timeout-ms", "86400000"},
                                   no_env());
    REQUIRE(cmd.config);
    CHECK(cmd.config->orchestrator_port == 65535);
    CHECK(cmd.config->threads == 256);
    CHECK(cmd.config->orchestrator.admission.max_in_flight == 1);
    CHECK(cmd.config->orchestrator.admission.min_limit == 1);
    CHECK(cmd.config->orchestrator.retry.budget_ratio == 1.0);
    CHECK(cmd.config->sched_slice.count() == 0);
    CHECK(cmd.config->orchestrator.upstream.timeout.count() == 86'400'000);
}

TEST_CASE("text that is not a whole number is refused like a value out of range", "[unit]") {
    for (const char* v : {"12abc", "", "1.5", "0x10", "++1", " 8"}) {
        INFO(v);
        CHECK(refusal(parse_serve_command({"--pool-size", v}, no_env())).find("--pool-size: must be 0..100000, got ") != std::string::npos);
    }
}

TEST_CASE("a range with an off value and an open lower end say so", "[unit]") {
    CHECK(refusal(parse_serve_command({"--sched-slice-us", "50"}, no_env())).find("--sched-slice-us: must be 0 or 100..100000, got 50") !=
          std::string::npos);
    CHECK(refusal(parse_serve_command({"--breaker-failure-rate", "0"}, no_env()))
              .find("--breaker-failure-rate: must be more than 0 and at most 1, got 0") != std::string::npos);
    CHECK(refusal(parse_serve_command({"--retry-budget", "nan"}, no_env())).find("--retry-budget: must be 0..1, got nan") != std::string::npos);
}

TEST_CASE("stream and generate range-check their numbers too", "[unit]") {
    CHECK(refusal(parse_stream_command({"--concurrency", "0"}, no_env())).find("offerd stream: --concurrency: must be 1..4096, got 0") == 0);
    CHECK(refusal(parse_stream_command({"--retries", "-1"}, no_env())).find("--retries: must be 0..20, got -1") != std::string::npos);
    CHECK(refusal(parse_stream_command({"--timeout-ms", "0"}, no_env())).find("--timeout-ms: must be 1..86400000, got 0") != std::string::npos);
    CHECK(refusal(parse_generate_command({"--rows", "-5"}, no_env())).find("offerd generate: --rows: must be 0..100000000, got -5") == 0);
    CHECK(refusal(parse_generate_command({"--members", "-1"}, no_env())).find("--members: must be 0..20000000, got -1") != std::string::npos);
    CHECK(refusal(parse_generate_command({"--malformed-share", "2"}, no_env())).find("--malformed-share: must be 0..1, got 2") !=
          std::string::npos);
}

TEST_CASE("the positional argument of stream is the CSV to stream", "[unit]") {
    auto cmd = parse_stream_command({"two.csv"}, no_env());
    REQUIRE(cmd.config);
    CHECK(cmd.config->csv == "two.csv");
    auto dash = parse_stream_command({"--csv", "-"}, no_env());
    REQUIRE(dash.config);
    CHECK(dash.config->csv == "-");
}

TEST_CASE("two CSVs for stream or a stray argument for generate or serve are refused", "[unit]") {
    CHECK(refusal(parse_stream_command({"one.csv", "two.csv"}, no_env())).find("offerd stream: ") == 0);
    CHECK(refusal(parse_stream_command({"--csv", "one.csv", "two.csv"}, no_env())).find("offerd stream: ") == 0);
    CHECK(refusal(parse_generate_command({"extra"}, no_env())).find("offerd generate: ") == 0);
    CHECK(refusal(parse_serve_command({"--role", "all", "extra"}, no_env())).find("offerd: ") == 0);
}

TEST_CASE("help shows each numeric default as the config holds it", "[unit]") {
    auto help = parse_serve_command({"--help"}, no_env());
    CHECK(help.exit_code == 0);
    CHECK(help.message.find("--retry-budget arg (=0.1)") != std::string::npos);
    CHECK(help.message.find("--orchestrator-port arg (=8000)") != std::string::npos);
}

// --- --config FILE and offerd config --print ---------------------------------------------------

namespace {

// A config file with `text`, removed at the end of the test.
struct config_file {
    std::string path;
    explicit config_file(const std::string& text) {
        char pattern[] = "/tmp/offerd-config-XXXXXX";
        const int fd = mkstemp(pattern);
        REQUIRE(fd >= 0);
        close(fd);
        path = pattern;
        std::ofstream(path, std::ios::trunc) << text;
    }
    ~config_file() { std::remove(path.c_str()); }
    config_file(const config_file&) = delete;
    config_file& operator=(const config_file&) = delete;
};

}  // namespace

TEST_CASE("a config file sets options by their flag names, with comments and blank lines", "[unit]") {
    config_file f("# offerd\n\nthreads = 3\n  pool-size=7   # idle connections\nhost = 127.0.0.2\nrole = orchestrator\nrole = member-data\n"
                  "insecure-allow-unauthenticated = true\nretry-budget = 0.25\n");
    auto cmd = parse_serve_command({"--config", f.path}, no_env());
    INFO(cmd.message);
    REQUIRE(cmd.config);
    CHECK(cmd.config->threads == 3);
    CHECK(cmd.config->orchestrator.upstream.max_idle == 7);
    CHECK(cmd.config->host == "127.0.0.2");
    CHECK(cmd.config->has(role::orchestrator));
    CHECK(cmd.config->has(role::member_data));
    CHECK_FALSE(cmd.config->has(role::prediction));
    CHECK(cmd.config->security.insecure_allow_unauthenticated);
    CHECK(cmd.config->orchestrator.retry.budget_ratio == 0.25);
}

TEST_CASE("precedence is command line, then environment, then config file, then defaults", "[unit]") {
    config_file f("threads = 3\npool-size = 7\nmax-in-flight = 11\nrole = prediction\n");
    auto cmd = parse_serve_command({"--config", f.path, "--threads", "5", "--role", "orchestrator"},
                                   env_of({{"OFFERD_THREADS", "4"}, {"OFFERD_POOL_SIZE", "8"}}));
    INFO(cmd.message);
    REQUIRE(cmd.config);
    CHECK(cmd.config->threads == 5);                               // flag over env and file
    CHECK(cmd.config->orchestrator.upstream.max_idle == 8);        // env over file
    CHECK(cmd.config->orchestrator.admission.max_in_flight == 11);           // file over default
    CHECK(cmd.config->orchestrator.upstream.timeout.count() == 2000);  // default
    CHECK(cmd.config->has(role::orchestrator));                    // the flag replaces the file's roles,
    CHECK_FALSE(cmd.config->has(role::prediction));                // they are not added up
}

TEST_CASE("the config file can be named by OFFERD_CONFIG", "[unit]") {
    config_file f("threads = 6\n");
    auto cmd = parse_serve_command({}, env_of({{"OFFERD_CONFIG", f.path}}));
    REQUIRE(cmd.config);
    CHECK(cmd.config->threads == 6);
}

TEST_CASE("an unknown key in a config file is refused naming the key and its line", "[unit]") {
    config_file f("threads = 2\n\n# comment\nthread-count = 4\n");
    const auto msg = refusal(parse_serve_command({"--config", f.path}, no_env()));
    CHECK(msg.find(f.path + ":4: unknown key 'thread-count'") != std::string::npos);
}

TEST_CASE("a bad value in a config file is refused with the file, line, key and range", "[unit]") {
    config_file f("host = 0.0.0.0\norchestrator-port = -1\n");
    const auto msg = refusal(parse_serve_command({"--config", f.path}, no_env()));
    CHECK(msg.find(f.path + ":2: orchestrator-port: must be 0..65535, got -1") != std::string::npos);
    config_file b("insecure-allow-unauthenticated = maybe\n");
    CHECK(refusal(parse_serve_command({"--config", b.path}, no_env())).find(b.path + ":1: the argument ('maybe') for option 'insecure-allow-unauthenticated' is invalid") != std::string::npos);
}

TEST_CASE("a bad value in a config file that a flag overrides is never read", "[unit]") {
    config_file f("threads = -3\n");
    auto cmd = parse_serve_command({"--config", f.path, "--threads", "2"}, no_env());
    REQUIRE(cmd.config);
    CHECK(cmd.config->threads == 2);
}

TEST_CASE("config file lines that are not key = value, repeated keys, sections and help are refused", "[unit]") {
    const std::vector<std::pair<std::string, std::string>> cases{
        {"threads 3\n", ":1: expected `key = value`, got 'threads 3'"},
        {"threads = 3\nthreads = 4\n", ":2: 'threads' is already set on line 1"},
        {"[serve]\nthreads = 3\n", ":1: sections are not used"},
        {" = 3\n", ":1: a key is missing"},
        {"help = true\n", ":1: 'help' cannot be set"},
        {"config = other.conf\n", ":1: 'config' cannot be set"},
    };
    for (const auto& [text, expected] : cases) {
        config_file f(text);
        INFO(text);
        CHECK(refusal(parse_serve_command({"--config", f.path}, no_env())).find(f.path + expected) != std::string::npos);
    }
}

TEST_CASE("a config file that cannot be read is refused with its name", "[unit]") {
    CHECK(refusal(parse_serve_command({"--config", "/nonexistent/offerd.conf"}, no_env())).find("--config: cannot read '/nonexistent/offerd.conf'") !=
          std::string::npos);
    CHECK(refusal(parse_serve_command({"--config", "/tmp"}, no_env())).find("--config: cannot read '/tmp'") != std::string::npos);
}

TEST_CASE("config --print shows every option with its effective value and source", "[unit]") {
    config_file f("max-in-flight = 11\n");
    auto cmd = parse_config_command({"--print", "--config", f.path, "--threads", "5"}, env_of({{"OFFERD_POOL_SIZE", "8"}}));
    INFO(cmd.message);
    REQUIRE(cmd.exit_code == 0);
    CHECK_FALSE(cmd.config);
    const auto& t = cmd.message;
    CHECK(t.find("\nthreads = 5  # command line\n") != std::string::npos);
    CHECK(t.find("\npool-size = 8  # environment OFFERD_POOL_SIZE\n") != std::string::npos);
    CHECK(t.find("\nmax-in-flight = 11  # " + f.path + ":1\n") != std::string::npos);
    CHECK(t.find("\nupstream-timeout-ms = 2000  # default\n") != std::string::npos);
    CHECK(t.find("\nretry-budget = 0.1  # default\n") != std::string::npos);
    CHECK(t.find("\nservice-auth = false  # default\n") != std::string::npos);  // a switch
    CHECK(t.find("\n# role =  # unset\n") != std::string::npos);
    CHECK(t.find("\nhelp") == std::string::npos);
    CHECK(t.find("\nconfig =") == std::string::npos);
}

TEST_CASE("config --print output read back as a config file gives the same configuration", "[unit]") {
    auto first = parse_config_command({"--print", "--threads", "5", "--role", "orchestrator,prediction", "--retry-budget", "0.3",
                                       "--insecure-allow-unauthenticated", "--log-file", "/var/log/offerd/offerd.log"},
                                      no_env());
    REQUIRE(first.exit_code == 0);
    config_file f(first.message);
    auto again = parse_serve_command({"--config", f.path}, no_env());
    INFO(again.message);
    REQUIRE(again.config);
    CHECK(again.config->threads == 5);
    CHECK(again.config->has(role::prediction));
    CHECK_FALSE(again.config->has(role::member_data));
    CHECK(again.config->orchestrator.retry.budget_ratio == 0.3);
    CHECK(again.config->security.insecure_allow_unauthenticated);
    CHECK(again.config->log.file == "/var/log/offerd/offerd.log");
}

TEST_CASE("secrets in values are redacted and everything else is kept", "[unit]") {
    CHECK(redact_config_value("member-data-url", "http://svc:hunter2@db:8001/api") == "http://svc:REDACTED@db:8001/api");
    CHECK(redact_config_value("member-data-url", "http://svc@db:8001/a@b") == "http://svc@db:8001/a@b");
    CHECK(redact_config_value("pg-url", "host=db user=o password=hunter2 dbname=x") == "host=db user=o password=REDACTED dbname=x");
    CHECK(redact_config_value("pg-url", "postgresql://o:hunter2@db/x?sslmode=require") == "postgresql://o:REDACTED@db/x?sslmode=require");
    CHECK(redact_config_value("admin-token", "abc") == "REDACTED");
    CHECK(redact_config_value("api-keys", "/etc/offerd/keys") == "/etc/offerd/keys");
    CHECK(redact_config_value("host", "127.0.0.1") == "127.0.0.1");
}

TEST_CASE("config --print never shows a password given in an upstream URL", "[unit]") {
    auto cmd = parse_config_command({"--print", "--member-data-url", "http://svc:hunter2@127.0.0.1:8001/api"}, no_env());
    INFO(cmd.message);
    CHECK(cmd.message.find("hunter2") == std::string::npos);  // whether the URL is taken or refused
}

TEST_CASE("config --print refuses an invalid configuration like serve does", "[unit]") {
    CHECK(refusal(parse_config_command({"--print", "--threads", "-1"}, no_env())).find("offerd config: --threads: must be 0..256") == 0);
    CHECK(refusal(parse_config_command({}, no_env())).find("offerd config: expected --print") == 0);
}
