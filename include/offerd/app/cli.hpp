// Command-line parsing for `offerd [serve]`, `offerd stream` and `offerd generate`.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "offerd/app/config.hpp"
#include "offerd/domain/generator.hpp"
#include "offerd/streamer/streamer.hpp"

namespace offerd {

// Looks up an environment variable (injectable for tests); nullptr when unset.
using env_lookup = std::function<const char*(const char*)>;

// What parsing decided: run with a config, or print `message` and exit with `exit_code`
// (0 for --help, 2 for a usage error).
template <class Config>
struct parsed_command {
    std::optional<Config> config;
    std::string message;
    int exit_code = 0;
};

// Flags first, then OFFERD_<FLAG_NAME> environment variables (e.g. OFFERD_ORCHESTRATOR_PORT).
parsed_command<app_config> parse_serve_command(const std::vector<std::string>& args, const env_lookup& env);
parsed_command<stream_config> parse_stream_command(const std::vector<std::string>& args, const env_lookup& env);

struct generate_config {
    generator_options options;
    std::string output;  // empty: stdout
};
parsed_command<generate_config> parse_generate_command(const std::vector<std::string>& args, const env_lookup& env);

struct report_config {
    std::string log;   // JSON-lines log to read
    std::string html;  // also write this HTML page when not empty
};
parsed_command<report_config> parse_report_command(const std::vector<std::string>& args, const env_lookup& env);

// The top-level usage text.
std::string top_level_help();

}  // namespace offerd
