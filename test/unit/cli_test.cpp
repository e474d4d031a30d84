// Command-line parsing: every numeric flag and OFFERD_* value is range-checked with the range in
// the message, positional arguments are used or refused, never ignored.
#include <catch2/catch.hpp>
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
    for (const char* flag : {"--max-in-flight", "--pool-size", "--max-connections", "--threads", "--rate-burst"}) {
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
    auto cmd = parse_serve_command({"--orchestrator-port", "65535", "--threads", "256", "--max-in-flight", "1", "--retry-budget", "1",
                                    "--sched-slice-us", "0", "--upstream-timeout-ms", "86400000"},
                                   no_env());
    REQUIRE(cmd.config);
    CHECK(cmd.config->orchestrator_port == 65535);
    CHECK(cmd.config->threads == 256);
    CHECK(cmd.config->orchestrator.max_in_flight == 1);
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
