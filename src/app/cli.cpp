// Boost.Program_options descriptions, env-var fallback and validation for every command.
#include "offerd/app/cli.hpp"

#include <boost/program_options.hpp>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

#include "offerd/net/tls.hpp"

namespace offerd {

namespace po = boost::program_options;

namespace {

// OFFERD_ + the flag name upper-cased with '-' as '_'.
std::string env_name(const std::string& flag) {
    std::string out = "OFFERD_";
    for (char c : flag) out += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return out;
}

// --- numeric flags --------------------------------------------------------------------------
// Every numeric flag of every command is declared with ranged<T>(lo, hi), a drop-in for
// po::value<T>() that parses the text itself (program_options would wrap "-1" into 65535 for an
// unsigned type) and refuses anything outside [lo, hi] while storing, so flags and OFFERD_*
// values get the same check and one message: "--orchestrator-port: must be 0..65535, got -1".
//     ("pool-size", ranged<std::size_t>(0, 100'000)->default_value(d.pool), "...")
// The value is read back with vm["pool-size"].as<std::size_t>() as usual.
template <class T>
std::string number_text(T v) {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
}

template <class T>
class ranged_value final : public po::value_semantic {
    static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>);

public:
    ranged_value(T lo, T hi) : lo_(lo), hi_(hi) {}
    ranged_value* default_value(T v) {
        default_ = v;
        return this;
    }
    ranged_value* or_zero() {  // 0 is valid too (an "off" value below the range)
        or_zero_ = true;
        return this;
    }
    ranged_value* above_lo() {  // lo itself is not valid (a share that must be more than 0)
        above_lo_ = true;
        return this;
    }

    std::string name() const override { return default_ ? "arg (=" + number_text(*default_) + ")" : "arg"; }
    unsigned min_tokens() const override { return 1; }
    unsigned max_tokens() const override { return 1; }
    bool is_composing() const override { return false; }
    bool is_required() const override { return false; }
    bool apply_default(boost::any& store) const override {
        if (!default_) return false;
        store = *default_;
        return true;
    }
    void notify(const boost::any&) const override {}

    void parse(boost::any& store, const std::vector<std::string>& tokens, bool) const override {
        const std::string& text = tokens.empty() ? std::string() : tokens.front();
        std::optional<T> v = read(text);
        if (!v || !((or_zero_ && *v == T{}) || in_range(*v))) {
            po::error_with_option_name e("%canonical_option%: must be " + range_text() + ", got %value%");
            e.set_substitute("value", text);
            throw e;
        }
        store = *v;
    }

private:
    bool in_range(T v) const {
        if constexpr (std::is_integral_v<T>)
            return !(above_lo_ ? std::cmp_less_equal(v, lo_) : std::cmp_less(v, lo_)) && !std::cmp_greater(v, hi_);
        else
            return (above_lo_ ? v > lo_ : v >= lo_) && v <= hi_;
    }
    std::string range_text() const {
        const std::string r = above_lo_ ? "more than " + number_text(lo_) + " and at most " + number_text(hi_)
                                        : number_text(lo_) + ".." + number_text(hi_);
        return or_zero_ ? "0 or " + r : r;
    }
    // The whole text as a T: a decimal number, no blanks, no trailing characters; nullopt when it is
    // not one or does not fit T (reported like any other value out of the range).
    static std::optional<T> read(std::string_view text) {
        if (text.starts_with('+')) text.remove_prefix(1);
        if (text.empty() || text.starts_with('+')) return std::nullopt;
        if constexpr (std::is_integral_v<T>) {
            if (std::is_unsigned_v<T> && text.starts_with('-')) return std::nullopt;
            T v{};
            const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
            if (ec != std::errc{} || ptr != text.data() + text.size()) return std::nullopt;
            return v;
        } else {
            T v{};
            const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
            if (ec != std::errc{} || ptr != text.data() + text.size() || !std::isfinite(v)) return std::nullopt;
            return v;
        }
    }

    T lo_, hi_;
    std::optional<T> default_;
    bool or_zero_ = false;
    bool above_lo_ = false;
};

template <class T>
ranged_value<T>* ranged(T lo, T hi) {
    return new ranged_value<T>(lo, hi);  // owned by the option description, like po::value
}

// Bounds shared by many flags: a duration in milliseconds up to a day, a port.
constexpr long max_ms = 86'400'000;
constexpr std::uint16_t max_port = 65535;

// Where each option's value came from, for `offerd config --print`: "command line",
// "environment OFFERD_X" or "FILE:LINE"; options left at their defaults are absent.
using option_sources = std::map<std::string, std::string>;

// One option given as key and text, stored like a command-line value; a value error is renamed
// to `name` ("OFFERD_THREADS: must be 0..256, got -3", "offerd.conf:3: threads: ...").
void store_one(const po::options_description& desc, po::variables_map& vm, const std::string& key, const std::string& value,
               const std::string& name) {
    po::parsed_options one(&desc);
    po::option o;
    o.string_key = key;
    o.value.push_back(value);
    one.options.push_back(o);
    try {
        po::store(one, vm);
    } catch (po::error_with_option_name& e) {
        e.set_option_name(name);
        throw;
    }
}

// --config FILE: `key = value` lines (the long flag names without "--"; '#' starts a comment;
// Boost.Program_options' config-file syntax, read by po::parse_config_file), stored below the
// command line and the environment: a key they already set is skipped. Throws po::error naming
// the file and line for an unreadable file, a line that is not `key = value`, an unknown or
// repeated key and a bad value.
void store_config_file(const po::options_description& desc, po::variables_map& vm, const std::string& path, option_sources& sources) {
    std::error_code ec;
    std::ifstream in(path, std::ios::binary);
    if (!in || std::filesystem::is_directory(path, ec)) throw po::error("--config: cannot read '" + path + "'");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) throw po::error("--config: cannot read '" + path + "'");
    // The lines parse_config_file turns into options, in its order, with the same trimming and
    // comment rule, so that every option it returns has its line number. Sections ([name]) would
    // prefix every key and match no option: refused here with the line.
    struct entry {
        std::string key;
        int line;
    };
    std::vector<entry> entries;
    {
        std::istringstream lines(text);
        std::string s;
        int number = 0;
        const auto trim = [](std::string v) {
            const auto b = v.find_first_not_of(" \t\r\n");
            if (b == std::string::npos) return std::string();
            return v.substr(b, v.find_last_not_of(" \t\r\n") - b + 1);
        };
        while (std::getline(lines, s)) {
            ++number;
            if (const auto hash = s.find('#'); hash != std::string::npos) s.resize(hash);
            s = trim(s);
            if (s.empty()) continue;
            const std::string at = path + ":" + std::to_string(number) + ": ";
            if (s.front() == '[' && s.back() == ']') throw po::error(at + "sections are not used; write `key = value` lines");
            const auto eq = s.find('=');
            if (eq == std::string::npos) throw po::error(at + "expected `key = value`, got '" + s + "'");
            const std::string key = trim(s.substr(0, eq));
            if (key.empty()) throw po::error(at + "a key is missing before '='");
            entries.push_back({key, number});
        }
    }
    std::istringstream is(text);
    const po::parsed_options parsed = po::parse_config_file(is, desc, true);
    if (parsed.options.size() != entries.size()) throw po::error("--config: '" + path + "' could not be read as `key = value` lines");
    std::set<std::string> above;  // keys the command line or the environment set
    for (const auto& [key, value] : vm)
        if (!value.defaulted()) above.insert(key);
    std::map<std::string, int> seen;
    for (std::size_t i = 0; i < entries.size(); ++i) {
        const auto& [key, line] = entries[i];
        const po::option& o = parsed.options[i];
        const std::string at = path + ":" + std::to_string(line) + ": ";
        if (o.unregistered || o.string_key != key) throw po::error(at + "unknown key '" + key + "'");
        if (key == "help" || key == "config") throw po::error(at + "'" + key + "' cannot be set in a config file");
        const auto* d = desc.find_nothrow(key, false);
        const bool composing = d && d->semantic()->is_composing();
        if (auto [it, first] = seen.emplace(key, line); !first && !composing)
            throw po::error(at + "'" + key + "' is already set on line " + std::to_string(it->second));
        if (above.count(key)) continue;
        try {
            store_one(desc, vm, key, o.value.empty() ? std::string() : o.value.front(), key);
        } catch (const po::error& e) {
            throw po::error(at + e.what());  // a name starting with '/' would lose it as a prefix
        }
        sources.emplace(key, path + ":" + std::to_string(line));
    }
}

// Runs program_options over args, then the environment, then the --config file when desc has
// that option (a value set by an earlier source is kept). Throws po::error on bad input; an
// environment value's error names the variable ("OFFERD_THREADS: must be 0..256, got -3"), a
// file's names the file and line.
po::variables_map parse(const po::options_description& desc, const std::vector<std::string>& args, const env_lookup& env,
                        const po::positional_options_description& positional = {}, option_sources* sources = nullptr) {
    option_sources ignored;
    option_sources& from = sources ? *sources : ignored;
    po::variables_map vm;
    po::store(po::command_line_parser(args).options(desc).positional(positional).run(), vm);
    for (const auto& [key, value] : vm)
        if (!value.defaulted()) from.emplace(key, "command line");
    for (const auto& opt : desc.options()) {
        const std::string& name = opt->long_name();
        if (name == "help" || (vm.count(name) && !vm[name].defaulted())) continue;
        if (const char* v = env(env_name(name).c_str())) {
            store_one(desc, vm, name, v, env_name(name));
            from.emplace(name, "environment " + env_name(name));
        }
    }
    if (desc.find_nothrow("config", false) && vm.count("config")) store_config_file(desc, vm, vm["config"].as<std::string>(), from);
    po::notify(vm);
    return vm;
}

template <class Config>
parsed_command<Config> usage_error(const std::string& command, const std::string& what) {
    return {std::nullopt, "offerd" + (command.empty() ? "" : " " + command) + ": " + what + " (see --help)", 2};
}

template <class Config>
parsed_command<Config> help(const std::string& synopsis, const po::options_description& desc, const std::string& after) {
    std::ostringstream o;
    o << synopsis << "\n\n" << desc << after;
    return {std::nullopt, o.str(), 0};
}

std::chrono::milliseconds ms(long v) { return std::chrono::milliseconds(v); }

// --- security flags (README: Security). Values are file paths, never secrets, so --help and
// errors can show them.
po::options_description security_options(const security_config& d) {
    po::options_description o("security (README: Security)");
    // clang-format off
    o.add_options()
        ("api-keys", po::value<std::string>(), "file of `name:sha256-hex[:N/s[:burst]]` lines (offerd hash-key NAME prints one); clients send Authorization: Bearer KEY; re-read on SIGHUP")
        ("jwt-key", po::value<std::string>(), "JWT verification key: an RS256/ES256 public key in PEM, or a file holding an HS256 secret (32+ bytes)")
        ("jwt-issuer", po::value<std::string>(), "required JWT `iss`")
        ("jwt-audience", po::value<std::string>(), "required JWT `aud`")
        ("jwt-leeway-ms", ranged<long>(0, max_ms)->default_value(d.jwt_leeway.count()), "clock skew allowed on JWT exp and nbf")
        ("metrics-auth", po::value<std::string>()->default_value("auto"), "credential for GET /metrics and /ready: auto (only on a non-loopback --host), on, off")
        ("service-auth", po::bool_switch(), "member-data, prediction and offer-engine listeners require credentials too (the orchestrator always does when configured)")
        ("service-api-keys", po::value<std::string>(), "keys file (as --api-keys) of the callers the service listeners accept, the orchestrators' own keys, so that a client of the orchestrator cannot call member-data directly; implies --service-auth (default with --service-auth: the --api-keys and --jwt-key of the orchestrator)")
        ("rate-limit", po::value<std::string>(), "per-client token bucket on the orchestrator, e.g. 50/s (default: unlimited); beyond it 429 with Retry-After")
        ("rate-burst", ranged<std::uint32_t>(0, 1'000'000)->default_value(d.rate.burst), "token bucket size (0: the rate per second, at least 1)")
        ("insecure-allow-unauthenticated", po::bool_switch(), "start even when a non-loopback --host leaves a listener without authentication")
        ("member-data-key-file", po::value<std::string>(), "file holding the key the orchestrator sends to member-data as a Bearer token")
        ("prediction-key-file", po::value<std::string>(), "file holding the key the orchestrator sends to prediction")
        ("offer-engine-key-file", po::value<std::string>(), "file holding the key the orchestrator sends to offer-engine")
        ("tls-cert", po::value<std::string>(), "PEM certificate chain (leaf first) every listener of this process serves over HTTPS (TLS 1.2+); needs --tls-key. Unset upstream URLs then use https to this process's listeners, trusting exactly this certificate")
        ("tls-key", po::value<std::string>(), "PEM private key of --tls-cert")
        ("upstream-ca", po::value<std::string>(), "PEM CA certificates that https:// upstream URLs are verified against, host name included (default: the system store)");
    // clang-format on
    return o;
}

// Fills cfg from the flags; a usage error's text, or "" when they are valid.
std::string read_security_options(const po::variables_map& vm, security_config& cfg) {
    for (auto [flag, dst] : {std::pair{"api-keys", &cfg.api_keys_file}, std::pair{"jwt-key", &cfg.jwt_key_file},
                             std::pair{"service-api-keys", &cfg.service_api_keys_file},
                             std::pair{"jwt-issuer", &cfg.jwt_issuer}, std::pair{"jwt-audience", &cfg.jwt_audience},
                             std::pair{"member-data-key-file", &cfg.member_data_key_file},
                             std::pair{"prediction-key-file", &cfg.prediction_key_file},
                             std::pair{"offer-engine-key-file", &cfg.offer_engine_key_file},
                             std::pair{"tls-cert", &cfg.tls_cert_file}, std::pair{"tls-key", &cfg.tls_key_file},
                             std::pair{"upstream-ca", &cfg.upstream_ca_file}})
        if (vm.count(flag)) *dst = vm[flag].as<std::string>();
    cfg.jwt_leeway = ms(vm["jwt-leeway-ms"].as<long>());
    const std::string m = vm["metrics-auth"].as<std::string>();
    if (m != "auto" && m != "on" && m != "off") return "--metrics-auth must be auto, on or off";
    cfg.metrics = m == "on" ? metrics_auth::on : m == "off" ? metrics_auth::off : metrics_auth::automatic;
    cfg.service_auth = vm["service-auth"].as<bool>() || !cfg.service_api_keys_file.empty();
    cfg.insecure_allow_unauthenticated = vm["insecure-allow-unauthenticated"].as<bool>();
    if (vm.count("rate-limit")) {
        auto r = parse_rate(vm["rate-limit"].as<std::string>());
        if (!r) return "--rate-limit: " + r.error().detail;
        cfg.rate.per_second = *r;
    }
    cfg.rate.burst = vm["rate-burst"].as<std::uint32_t>();
    if (auto v = validate(cfg); !v) return v.error().detail;
    return {};
}

// --- offerd config --print ---------------------------------------------------------------
// An option's stored value as config-file text: the types the descriptions above use.
template <class... T>
std::optional<std::string> numeric_text(const boost::any& a) {
    std::optional<std::string> out;
    ((out || !boost::any_cast<T>(&a) ? void() : void(out = number_text(*boost::any_cast<T>(&a)))), ...);
    return out;
}

std::optional<std::string> value_text(const boost::any& a) {
    if (const auto* s = boost::any_cast<std::string>(&a)) return *s;
    if (const auto* b = boost::any_cast<bool>(&a)) return *b ? "true" : "false";
    if (const auto* v = boost::any_cast<std::vector<std::string>>(&a)) {
        std::string joined;
        for (const auto& x : *v) joined += (joined.empty() ? "" : ",") + x;
        return joined;
    }
    return numeric_text<std::uint16_t, std::uint32_t, std::uint64_t, std::size_t, int, long, double>(a);
}

// The effective options as a config file `--config` reads back: every option in --help order,
// `key = value  # where it came from`; an unset option without default as a comment.
std::string config_file_text(const po::options_description& desc, const po::variables_map& vm, const option_sources& sources) {
    std::ostringstream o;
    o << "# offerd configuration: the effective values, highest first: command line, OFFERD_* environment,\n"
         "# --config file, defaults. Read back with: offerd --config FILE. Secrets show as REDACTED.\n";
    if (vm.count("config")) o << "# config file read: " << vm["config"].as<std::string>() << '\n';
    for (const auto& opt : desc.options()) {
        const std::string& key = opt->long_name();
        if (key == "help" || key == "config") continue;
        const auto text = vm.count(key) ? value_text(vm[key].value()) : std::nullopt;
        if (!text) {
            o << "# " << key << " =  # unset\n";
            continue;
        }
        const auto source = sources.find(key);
        o << key << " = " << redact_config_value(key, *text) << "  # " << (source == sources.end() ? "default" : source->second) << '\n';
    }
    return o.str();
}

}  // namespace

std::string top_level_help() {
    return "offerd - real-time member-offer orchestrator\n\n"
           "Usage:\n"
           "  offerd [serve] [--role ROLES] [options]   run listeners (default: all four roles)\n"
           "  offerd stream [--csv FILE] [--target URL] replay a CSV against the orchestrator\n"
           "  offerd generate [--rows N] [--seed S]     write a deterministic realistic CSV\n"
           "  offerd report LOG.jsonl [--html FILE]     summarize a log: statuses, offers, latency, throughput\n"
           "  offerd hash-key NAME < key                print the --api-keys line for a key read from stdin\n"
           "  offerd config --print [options]           print the effective serve configuration as a --config file\n"
           "  offerd <command> --help                   options of a command\n"
           "  offerd --version                          version, git revision, compiler, Boost\n\n"
           "Roles and default ports: orchestrator 8000, member-data 8001, prediction 8002, offer-engine 8003.\n"
           "Example:\n"
           "  offerd --role all &\n"
           "  curl -s localhost:8000/member/offer -d '{\"memberId\":\"M1\",\"lastTransactionUtcTs\":\"2024-05-01T10:00:00Z\",\n"
           "       \"lastTransactionType\":\"buy\",\"lastTransactionPointsBought\":120,\"lastTransactionRevenueUsd\":30}'\n";
}

namespace {

// parse_serve_command, and with `print` set the effective options as a config file (in message).
parsed_command<app_config> parse_serve(const std::vector<std::string>& args, const env_lookup& env, bool print) {
    app_config d;  // defaults
    po::options_description desc("offerd serve options (each also as OFFERD_<NAME>, e.g. OFFERD_ORCHESTRATOR_PORT)");
    // clang-format off
    desc.add_options()
        ("help,h", "show this help")
        ("config", po::value<std::string>(), "read options from this file: `key = value` lines with the flag names (no --), '#' comments; flags and OFFERD_* variables win over it; offerd config --print shows the result")
        ("role", po::value<std::vector<std::string>>()->composing(),
         "roles to run: all (default), orchestrator, member-data, prediction, offer-engine; repeat or comma-separate")
        ("host", po::value<std::string>()->default_value(d.host), "address every listener binds to")
        ("orchestrator-port", ranged<std::uint16_t>(0, max_port)->default_value(d.orchestrator_port), "orchestrator port (0: any free port)")
        ("member-data-port", ranged<std::uint16_t>(0, max_port)->default_value(d.member_data_port), "member-data port")
        ("prediction-port", ranged<std::uint16_t>(0, max_port)->default_value(d.prediction_port), "prediction port")
        ("offer-engine-port", ranged<std::uint16_t>(0, max_port)->default_value(d.offer_engine_port), "offer-engine port")
        ("member-data-url", po::value<std::string>(), "member-data base URL for the orchestrator (default: local member-data)")
        ("prediction-url", po::value<std::string>(), "prediction base URL (default: local prediction)")
        ("offer-engine-url", po::value<std::string>(), "offer-engine base URL (default: local offer-engine)")
        ("now", po::value<std::string>(), "fixed RFC 3339 'now' for DAYS_SINCE_LAST_TRANSACTION (replays, backtests)")
        ("threads", ranged<std::size_t>(0, 256)->default_value(0), "worker threads, one io_context each (0: one per CPU this process may use, taskset and cpusets included); calls between roles of one process stay on the calling worker")
        ("realtime-priority", ranged<int>(0, 99)->default_value(d.realtime_priority),
         "opt-in: run the worker threads SCHED_FIFO at this priority (1-99) when permitted (CAP_SYS_NICE or ulimit -r), so a worker with a request does not wait for a core behind other processes; under overload ordinary work on those CPUs then waits (README: Scheduling). Use it on a host or CPUs dedicated to offerd that needs the lowest tail latency. 0 (default): ordinary scheduling. Refused (the 'scheduling' log event says why) with more workers than CPUs, under a cgroup CPU quota, with a finite RLIMIT_RTTIME, or with the kernel's protection of ordinary tasks turned off")
        ("sched-slice-us", ranged<long>(100, 100'000)->or_zero()->default_value(d.sched_slice.count()),
         "CPU time slice each worker thread asks the kernel for when not real-time (Linux 6.12+, ignored before): a short one gets a waking worker onto a busy core sooner; 0 keeps the kernel default, else 100 to 100000")
        ("log-file", po::value<std::string>(), "append JSON-lines logs to this file (default: stderr)")
        ("log-level", po::value<std::string>()->default_value("info"), "debug, info, warn, error or off")
        ("instance-id", po::value<std::string>(), "this process's name in the `instance` field of request log events, e.g. the replica's name (default: HOSTNAME:PID)")
        ("upstream-timeout-ms", ranged<long>(1, max_ms)->default_value(d.orchestrator.upstream.timeout.count()), "timeout of each upstream call")
        ("request-deadline-ms", ranged<long>(1, max_ms)->default_value(d.orchestrator.request_deadline.count()), "budget of a whole offer request")
        ("max-attempts", ranged<int>(1, 10)->default_value(d.orchestrator.retry.max_attempts), "attempts per upstream call that is safe to repeat (1: no retries)")
        ("retry-budget", ranged<double>(0, 1)->default_value(d.orchestrator.retry.budget_ratio), "retries allowed as a share of calls (0.1: at most ~10% extra load)")
        ("breaker-min-calls", ranged<int>(0, 1'000'000)->default_value(d.orchestrator.breaker.min_calls), "calls to an upstream in the breaker window before its circuit may open; answers rejecting one request (500) do not count (0: never open)")
        ("breaker-failure-rate", ranged<double>(0, 1)->above_lo()->default_value(d.orchestrator.breaker.failure_rate), "share of failed calls in the window that opens the circuit (0-1]; a 500 for one request weighs half")
        ("breaker-window-ms", ranged<long>(1, max_ms)->default_value(d.orchestrator.breaker.window.count()), "sliding window the failure rate is judged over")
        ("breaker-open-ms", ranged<long>(1, max_ms)->default_value(d.orchestrator.breaker.open_for.count()), "how long an open circuit fails fast before probes go through")
        ("breaker-threshold", ranged<int>(0, 1'000'000), "deprecated: same as --breaker-min-calls (0: never open)")
        ("idempotency-retention-ms", ranged<long>(1, 7 * max_ms)->default_value(d.orchestrator.idempotency_retention.count()), "how long Idempotency-Key answers are replayed")
        ("member-data-journal", po::value<std::string>(), "member-data: journal every write to this file and replay it on start")
        ("member-data-store", po::value<std::string>(),
         "member-data: keep the histories in PostgreSQL (postgresql://USER@HOST:PORT/DB; schema created on start) instead of memory, so several member-data processes can share them and keys de-duplicate across restarts; not with --member-data-journal")
        ("prediction-fault-share", ranged<double>(0, 1)->default_value(0.0),
         "prediction (the stand-in): answer 500 to this share of feature vectors, picked by a hash of the request body, so the same inputs always fail (poison requests for fault drills and the bench); 0: never")
        ("member-data-journal-fsync", po::value<std::string>()->default_value("always")->implicit_value("always"),
         "member-data: always: a write is fdatasync'ed before it is answered (writes arriving together share one fdatasync); never: leave it to the OS")
        ("member-cache-ms", ranged<long>(0, 7 * max_ms)->default_value(d.orchestrator.members.idle.count()),
         "how long an idle member's history stays in the orchestrator (warm: its next request reads nothing); 0: only while it has requests in progress or writes undelivered. Writes made to member-data directly, bypassing offerd, are seen once the member went cold")
        ("member-cache-transactions", ranged<std::size_t>(0, 1'000'000'000)->default_value(d.orchestrator.members.max_transactions),
         "bound of all warm histories, in transactions; beyond it the least recently used idle members go cold")
        ("data-dir", po::value<std::string>(), "directory for the durable outbox (outbox.log); without it the outbox lives in memory only")
        ("outbox-fsync", po::value<std::string>()->default_value("always"), "always: fdatasync each outbox record; never: leave it to the OS")
        ("state-url", po::value<std::string>(),
         "cluster mode: the PostgreSQL (postgresql://USER@HOST:PORT/DB) that holds every member's accepted transactions, so replicas behind a balancer count each exactly once and replay each other's Idempotency-Keys (README: Running a cluster). Without it everything stays in this process")
        ("pool-size", ranged<std::size_t>(0, 100'000)->default_value(d.orchestrator.upstream.max_idle), "idle keep-alive connections kept per upstream per thread")
        ("max-in-flight", ranged<std::size_t>(1, 10'000'000)->default_value(d.orchestrator.admission.max_in_flight), "offer requests in progress before answering 503 (the hard cap of the adaptive limit)")
        ("admission-target-us", ranged<long>(0, 1'000'000)->default_value(d.orchestrator.admission.target.count()),
         "adaptive concurrency: when the event loops' queueing delay stays above this for a whole 100 ms, fewer offer requests are admitted (the excess is answered 503 at once); 0: only --max-in-flight")
        ("admission-min-limit", ranged<std::size_t>(1, 10'000'000)->default_value(d.orchestrator.admission.min_limit),
         "the adaptive limit never admits fewer offer requests at once than this (capped by --max-in-flight): a slow or shared machine lags at any load, and that is not overload")
        ("max-connections", ranged<std::size_t>(1, 10'000'000)->default_value(d.limits.max_connections), "open connections per listener")
        ("idle-timeout-ms", ranged<long>(1, max_ms)->default_value(d.limits.idle_timeout.count()), "keep-alive idle timeout")
        ("header-timeout-ms", ranged<long>(1, max_ms)->default_value(d.limits.header_timeout.count()), "time allowed to send request headers")
        ("body-timeout-ms", ranged<long>(1, max_ms)->default_value(d.limits.body_timeout.count()), "time allowed to send a request body")
        ("throughput-interval-ms", ranged<long>(0, max_ms)->default_value(d.throughput_interval.count()), "period of the throughput log event (0: off)")
        ("ready-interval-ms", ranged<long>(0, max_ms)->default_value(d.ready_interval.count()), "upstream health probe period behind GET /ready (0: off, /ready answers 503)")
        ("shutdown-timeout-ms", ranged<long>(0, max_ms)->default_value(d.shutdown_timeout.count()), "drain budget on SIGINT/SIGTERM");
    // clang-format on
    desc.add(security_options(d.security));
    po::variables_map vm;
    option_sources sources;
    try {
        vm = parse(desc, args, env, {}, &sources);
    } catch (const po::error& e) {
        return usage_error<app_config>(print ? "config" : "", e.what());
    }
    if (vm.count("help") && print)
        return {std::nullopt,
                "Usage: offerd config --print [--config FILE] [serve options]\n\n"
                "Prints the configuration offerd serve would run with, from the same flags, OFFERD_*\n"
                "variables and --config file, as a config file (secrets redacted), and exits 0.\n"
                "An invalid configuration is refused as offerd serve refuses it (exit 2).\n",
                0};
    if (vm.count("help"))
        return help<app_config>("Usage: offerd [serve] [--config FILE] [options]", desc,
                                "\nOn SIGINT/SIGTERM offerd stops accepting, drains in-flight requests and exits 0.\n"
                                "On SIGHUP it reopens the --log-file (for logrotate), re-reads the --api-keys file and goes on\n"
                                "(a bad file keeps the keys in use); it never exits on SIGHUP.\n");
    app_config c;
    if (vm.count("role")) {
        std::string joined;
        for (const auto& r : vm["role"].as<std::vector<std::string>>()) joined += r + ",";
        auto roles = parse_roles(joined);
        if (!roles) return usage_error<app_config>("", "--role: " + roles.error().detail);
        c.roles = *roles;
    }
    c.host = vm["host"].as<std::string>();
    c.orchestrator_port = vm["orchestrator-port"].as<std::uint16_t>();
    c.member_data_port = vm["member-data-port"].as<std::uint16_t>();
    c.prediction_port = vm["prediction-port"].as<std::uint16_t>();
    c.offer_engine_port = vm["offer-engine-port"].as<std::uint16_t>();
    auto& o = c.orchestrator;
    for (auto [flag, dst] : {std::pair{"member-data-url", &o.member_data_url}, std::pair{"prediction-url", &o.prediction_url},
                             std::pair{"offer-engine-url", &o.offer_engine_url}}) {
        if (!vm.count(flag)) continue;
        *dst = vm[flag].as<std::string>();
        if (auto u = parse_url(*dst); !u) return usage_error<app_config>("", std::string("--") + flag + ": " + u.error().detail);
    }
    if (vm.count("now")) {
        auto now = parse_timestamp(vm["now"].as<std::string>());
        if (!now) return usage_error<app_config>("", "--now: " + now.error().detail);
        o.now = *now;
    }
    c.threads = vm["threads"].as<std::size_t>();
    c.realtime_priority = vm["realtime-priority"].as<int>();
    c.sched_slice = std::chrono::microseconds(vm["sched-slice-us"].as<long>());
    if (vm.count("log-file")) c.log.file = vm["log-file"].as<std::string>();
    if (vm.count("instance-id")) {
        c.log.instance = vm["instance-id"].as<std::string>();
        if (c.log.instance.empty() || c.log.instance.size() > 128)
            return usage_error<app_config>("", "--instance-id: must be 1 to 128 characters");
    }
    auto level = parse_log_level(vm["log-level"].as<std::string>());
    if (!level) return usage_error<app_config>("", "--log-level: " + level.error().detail);
    c.log.level = *level;
    for (auto [flag, dst] : {std::pair{"upstream-timeout-ms", &o.upstream.timeout}, std::pair{"request-deadline-ms", &o.request_deadline},
                             std::pair{"idle-timeout-ms", &c.limits.idle_timeout}, std::pair{"header-timeout-ms", &c.limits.header_timeout},
                             std::pair{"body-timeout-ms", &c.limits.body_timeout}, std::pair{"throughput-interval-ms", &c.throughput_interval},
                             std::pair{"breaker-open-ms", &o.breaker.open_for}, std::pair{"breaker-window-ms", &o.breaker.window},
                             std::pair{"idempotency-retention-ms", &o.idempotency_retention}, std::pair{"member-cache-ms", &o.members.idle},
                             std::pair{"ready-interval-ms", &c.ready_interval}, std::pair{"shutdown-timeout-ms", &c.shutdown_timeout}})
        *dst = ms(vm[flag].as<long>());
    o.retry.max_attempts = vm["max-attempts"].as<int>();
    o.retry.budget_ratio = vm["retry-budget"].as<double>();
    o.breaker.min_calls = vm[vm.count("breaker-threshold") ? "breaker-threshold" : "breaker-min-calls"].as<int>();
    o.breaker.failure_rate = vm["breaker-failure-rate"].as<double>();
    if (vm.count("member-data-journal")) c.member_data.journal = vm["member-data-journal"].as<std::string>();
    c.prediction_fault_share = vm["prediction-fault-share"].as<double>();
    if (vm.count("member-data-store")) {
        c.member_data.store_url = vm["member-data-store"].as<std::string>();
        const std::string_view u = c.member_data.store_url;
        if (u.rfind("postgresql://", 0) != 0 && u.rfind("postgres://", 0) != 0)
            return usage_error<app_config>("", "--member-data-store must be a postgresql:// URL (got '" + c.member_data.store_url + "')");
        if (!c.member_data.journal.empty())
            return usage_error<app_config>("", "--member-data-store and --member-data-journal do not go together: PostgreSQL is already durable");
    }
    const auto journal_fsync = parse_fsync_policy(vm["member-data-journal-fsync"].as<std::string>());
    if (!journal_fsync) return usage_error<app_config>("", "--member-data-journal-fsync must be always or never");
    c.member_data.journal_fsync = *journal_fsync;
    if (vm.count("data-dir")) o.outbox.dir = vm["data-dir"].as<std::string>();
    if (vm.count("state-url")) o.state_url = vm["state-url"].as<std::string>();
    const std::string fsync = vm["outbox-fsync"].as<std::string>();
    if (fsync != "always" && fsync != "never") return usage_error<app_config>("", "--outbox-fsync must be always or never");
    o.outbox.fsync = fsync == "always";
    o.upstream.max_idle = vm["pool-size"].as<std::size_t>();
    o.admission.max_in_flight = vm["max-in-flight"].as<std::size_t>();
    o.admission.target = std::chrono::microseconds(vm["admission-target-us"].as<long>());
    o.admission.min_limit = vm["admission-min-limit"].as<std::size_t>();
    o.admission.adaptive = o.admission.target.count() > 0;
    c.limits.max_connections = vm["max-connections"].as<std::size_t>();
    o.members.max_transactions = vm["member-cache-transactions"].as<std::size_t>();
    if (auto ok = validate(o); !ok) return usage_error<app_config>("", ok.error().detail);
    if (auto bad = read_security_options(vm, c.security); !bad.empty()) return usage_error<app_config>("", bad);
    // Files that cannot be used are a start-up error of their own: one line, exit 2 (the runtime
    // loads them again, and would throw the same message).
    if (!c.security.tls_cert_file.empty())
        if (auto t = make_server_tls_context(c.security.tls_cert_file, c.security.tls_key_file); !t)
            return {std::nullopt, "offerd: " + t.error().detail, 2};
    if (!c.security.upstream_ca_file.empty())
        if (auto t = make_client_tls_context(c.security.upstream_ca_file); !t) return {std::nullopt, "offerd: --upstream-ca: " + t.error().detail, 2};
    if (auto why = unauthenticated_exposure(c.security, c.host, c.has(role::orchestrator), (c.roles & ~static_cast<std::uint8_t>(role::orchestrator)) != 0);
        !why.empty())
        return {std::nullopt, "offerd: " + why, 2};
    if (print) return {std::nullopt, config_file_text(desc, vm, sources), 0};
    return {c, {}, 0};
}

}  // namespace

std::string redact_config_value(const std::string& key, std::string value) {
    constexpr const char* mask = "REDACTED";
    for (const char* word : {"password", "secret", "token"})
        if (key.find(word) != std::string::npos) return value.empty() ? value : mask;
    if (const auto scheme = value.find("://"); scheme != std::string::npos) {
        const auto start = scheme + 3;
        const auto end = value.find_first_of("/?#", start);
        const auto at = value.rfind('@', end == std::string::npos ? std::string::npos : end);
        if (at != std::string::npos && at > start)
            if (const auto colon = value.find(':', start); colon != std::string::npos && colon < at)
                value.replace(colon + 1, at - colon - 1, mask);
    }
    for (std::size_t p = 0; (p = value.find("password=", p)) != std::string::npos;) {
        const auto begin = p + 9;
        const auto stop = value.find_first_of(" &;", begin);
        value.replace(begin, (stop == std::string::npos ? value.size() : stop) - begin, mask);
        p = begin + std::string_view(mask).size();
    }
    return value;
}

parsed_command<app_config> parse_serve_command(const std::vector<std::string>& args, const env_lookup& env) {
    return parse_serve(args, env, false);
}

parsed_command<app_config> parse_config_command(const std::vector<std::string>& args, const env_lookup& env) {
    std::vector<std::string> rest;
    bool print = false, help_asked = false;
    for (const auto& a : args) {
        if (a == "--print") print = true;
        else rest.push_back(a);
        help_asked = help_asked || a == "--help" || a == "-h";
    }
    if (!print && !help_asked) return usage_error<app_config>("config", "expected --print");
    return parse_serve(rest, env, true);
}

parsed_command<stream_config> parse_stream_command(const std::vector<std::string>& args, const env_lookup& env) {
    stream_config d;
    po::options_description desc("offerd stream options (each also as OFFERD_<NAME>)");
    // clang-format off
    desc.add_options()
        ("help,h", "show this help")
        ("csv", po::value<std::string>()->default_value(d.csv), "CSV file with a header naming the five transaction columns, also as the one positional argument; - reads standard input")
        ("target", po::value<std::string>()->default_value(d.target), "orchestrator base URL")
        ("path", po::value<std::string>()->default_value(d.path), "request path; /member_data with a member-data --target seeds histories")
        ("concurrency", ranged<std::size_t>(1, 4096)->default_value(d.concurrency), "requests in flight at most (never two for one member)")
        ("quiet,q", po::bool_switch(), "print only skipped rows, failures and the summary")
        ("output", po::value<std::string>()->default_value("text"),
         "text: each answer body on stdout; jsonl: one JSON object per row on stdout, of every outcome (line, memberId, outcome ok|replayed|failed|skipped|held, status, offer, latency_ms, replayed, error), with the summary on stderr")
        ("summary-json", po::value<std::string>(), "also write the summary as one JSON object (counts, statuses, offers, exit_status) to this file; - writes it to stdout after the rows")
        ("timeout-ms", ranged<long>(1, max_ms)->default_value(d.timeout.count()), "per-request timeout")
        ("retries", ranged<int>(0, 20)->default_value(d.retries), "extra attempts after a timeout, 429 or 5xx (each row carries a stable Idempotency-Key, so retries never double a row)")
        ("realtime-priority", ranged<int>(0, 99)->default_value(d.realtime_priority),
         "opt-in: run the streaming thread SCHED_FIFO at this priority (1-99) when permitted (root, CAP_SYS_NICE or ulimit -r); use it beside an offerd started with --realtime-priority on the same machine, where an ordinary client waits for a core after every answer (member_data.csv took 0.49 s that way, 0.38 s with both real-time); 0 (default): ordinary scheduling")
        ("key-file", po::value<std::string>(), "file holding the API key (or JWT) sent as Authorization: Bearer (README: Security)")
        ("ca", po::value<std::string>(), "PEM CA certificates an https:// --target is verified against, host name included (default: the system store)");
    // clang-format on
    po::positional_options_description positional;
    positional.add("csv", 1);
    po::variables_map vm;
    try {
        vm = parse(desc, args, env, positional);
    } catch (const po::error& e) {
        return usage_error<stream_config>("stream", e.what());
    }
    if (vm.count("help"))
        return help<stream_config>("Usage: offerd stream [[--csv] FILE|-] [--target URL] [--concurrency N] [--quiet]", desc,
                                   "\nSends one POST /member/offer per valid row, in CSV order; malformed rows are skipped\n"
                                   "with one line each on stderr. Prints each answer, then a summary line\n"
                                   "(--output jsonl: one JSON object per row, for jq or a notebook).\n"
                                   "Exit status: 0 when no row failed, 1 when some failed, 2 on usage errors or an\n"
                                   "unreachable target.\n");
    stream_config c;
    c.csv = vm["csv"].as<std::string>();
    c.target = vm["target"].as<std::string>();
    c.path = vm["path"].as<std::string>();
    if (!c.path.starts_with('/')) return usage_error<stream_config>("stream", "--path must start with '/'");
    if (auto u = parse_url(c.target); !u) return usage_error<stream_config>("stream", "--target: " + u.error().detail);
    c.concurrency = vm["concurrency"].as<std::size_t>();
    c.quiet = vm["quiet"].as<bool>();
    if (const auto out = vm["output"].as<std::string>(); out == "jsonl") c.output = stream_output::jsonl;
    else if (out != "text") return usage_error<stream_config>("stream", "--output: expected text or jsonl, not '" + out + "'");
    if (vm.count("summary-json")) {
        c.summary_json = vm["summary-json"].as<std::string>();
        if (c.summary_json.empty()) return usage_error<stream_config>("stream", "--summary-json: expected a file name or -");
    }
    c.timeout = ms(vm["timeout-ms"].as<long>());
    c.retries = vm["retries"].as<int>();
    c.realtime_priority = vm["realtime-priority"].as<int>();
    if (vm.count("key-file")) c.key_file = vm["key-file"].as<std::string>();
    if (vm.count("ca")) c.ca_file = vm["ca"].as<std::string>();
    return {c, {}, 0};
}

parsed_command<generate_config> parse_generate_command(const std::vector<std::string>& args, const env_lookup& env) {
    generator_options d;
    po::options_description desc("offerd generate options");
    // clang-format off
    desc.add_options()
        ("help,h", "show this help")
        ("rows", ranged<std::uint64_t>(0, generator_options::max_rows)->default_value(d.rows), "data rows to write")
        ("seed", ranged<std::uint64_t>(0, std::numeric_limits<std::uint64_t>::max())->default_value(d.seed), "seed: the same seed gives the same bytes")
        ("members", ranged<std::uint64_t>(0, generator_options::max_members)->default_value(0), "distinct members (0: about rows/5)")
        ("malformed-share", ranged<double>(0, 1)->default_value(d.malformed_share), "share of deliberately malformed rows")
        ("output,o", po::value<std::string>(), "file to write (default: stdout)");
    // clang-format on
    po::variables_map vm;
    try {
        vm = parse(desc, args, env);
    } catch (const po::error& e) {
        return usage_error<generate_config>("generate", e.what());
    }
    if (vm.count("help"))
        return help<generate_config>("Usage: offerd generate [--rows N] [--seed S] [-o FILE]", desc,
                                     "\nThe repo's member_data.csv is `offerd generate --rows 5000 --seed 42`.\n");
    generate_config c;
    c.options.rows = vm["rows"].as<std::uint64_t>();
    c.options.seed = vm["seed"].as<std::uint64_t>();
    c.options.members = vm["members"].as<std::uint64_t>();
    c.options.malformed_share = vm["malformed-share"].as<double>();
    if (vm.count("output")) c.output = vm["output"].as<std::string>();
    return {c, {}, 0};
}

}  // namespace offerd

namespace offerd {

parsed_command<report_config> parse_report_command(const std::vector<std::string>& args, const env_lookup& env) {
    po::options_description desc("offerd report options");
    // clang-format off
    desc.add_options()
        ("help,h", "show this help")
        ("log", po::value<std::string>(), "the JSON-lines log written by offerd (--log-file)")
        ("html", po::value<std::string>(), "also write a self-contained HTML page with charts to this file");
    // clang-format on
    po::positional_options_description positional;
    positional.add("log", 1);
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(args).options(desc).positional(positional).run(), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        return usage_error<report_config>("report", e.what());
    }
    (void)env;
    if (vm.count("help"))
        return help<report_config>("Usage: offerd report LOG.jsonl [--html report.html]", desc,
                                   "\nPrints request counts by status, the offer mix, per-step latency p50/p90/p99/max,\n"
                                   "offer events per second and the slowest requests with their dominant step.\n");
    if (!vm.count("log")) return usage_error<report_config>("report", "a log file is required");
    report_config c;
    c.log = vm["log"].as<std::string>();
    if (vm.count("html")) c.html = vm["html"].as<std::string>();
    return {c, {}, 0};
}

}  // namespace offerd
