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

// Flags first, then OFFERD_<FLAG_NAME> environment variables (e.g. OFFERD_ORCHESTRATOR_PORT),
// then the `--config FILE` (or OFFERD_CONFIG) file of `key = value` lines, then defaults. A key of
// the file that is unknown, repeated or has a bad value is a usage error naming the file and line.
parsed_command<app_config> parse_serve_command(const std::vector<std::string>& args, const env_lookup& env);
// `offerd config --print [serve options]`: the effective serve configuration, validated like
// serve's, as a config file (each value with its source, secrets redacted) in `message`, exit 0.
parsed_command<app_config> parse_config_command(const std::vector<std::string>& args, const env_lookup& env);
// What `config --print` shows of a value: REDACTED for the whole value of a key naming a
// password, secret or token, for a URL's password (scheme://user:PASSWORD@host) and for a
// libpq-style `password=...` pair. Today's flags take key *files*, never keys; this guards what a
// URL or a later flag may carry.
std::string redact_config_value(const std::string& key, std::string value);
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
