// offerd: argv -> config -> run what was asked -> wait for SIGINT/SIGTERM (SIGHUP: reopen the log, reload keys). Glue only.
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <future>
#include <thread>
#include <iostream>
#include <pthread.h>
#include <unistd.h>
#include <string>
#include <vector>

#include "offerd/app/cli.hpp"
#include "offerd/app/runtime.hpp"
#include "offerd/app/scheduling.hpp"
#include "offerd/obs/build_info.hpp"
#include "offerd/obs/log.hpp"
#include "offerd/report/report.hpp"
#include "offerd/security/api_keys.hpp"

namespace {

const char* getenv_lookup(const char* name) { return std::getenv(name); }

int serve(const std::vector<std::string>& args) {
    auto cmd = offerd::parse_serve_command(args, getenv_lookup);
    if (!cmd.config) {
        (cmd.exit_code == 0 ? std::cout : std::cerr) << cmd.message << '\n';
        return cmd.exit_code;
    }
    // Block the stop signals in every thread; the main thread waits for them with sigwait.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGHUP);  // reloads the API keys file instead of ending the process
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
    try {
        offerd::logger log(cmd.config->log);
        offerd::runtime rt(*cmd.config, log);
        rt.start();
        for (auto r : {offerd::role::orchestrator, offerd::role::member_data, offerd::role::prediction, offerd::role::offer_engine})
            if (rt.port(r)) std::cout << "offerd: " << offerd::to_string(r) << " listening on " << rt.base_url(r) << '\n';
        std::cout.flush();
        int sig = 0;
        while (sigwait(&stop_signals, &sig) == 0 && sig == SIGHUP) {
            // logrotate: the log file was moved away; write on to a new one under its name.
            if (!cmd.config->log.file.empty()) {
                if (auto reopened = log.reopen()) {
                    offerd::log_event(log, offerd::log_level::info, "log_reopened").with("file", cmd.config->log.file);
                    std::cout << "offerd: SIGHUP: log file reopened" << std::endl;
                } else {
                    std::cout << "offerd: SIGHUP: log file not reopened, logging on to the old one: " << reopened.error().detail
                              << std::endl;
                }
            }
            if (auto n = rt.reload_keys()) {
                offerd::log_event(log, offerd::log_level::info, "keys_reloaded").with("clients", static_cast<std::uint64_t>(*n));
                std::cout << "offerd: SIGHUP: keys reloaded (" << *n << " clients)" << std::endl;
            } else {
                offerd::log_event(log, offerd::log_level::error, "keys_reload_failed").with("error", n.error().detail);
                std::cout << "offerd: SIGHUP: keys not reloaded, the previous ones stay: " << n.error().detail << std::endl;
            }
        }
        std::cout << "offerd: " << (sig == SIGINT ? "SIGINT" : "SIGTERM") << " received, draining" << std::endl;
        // The drain itself is bounded by --shutdown-timeout-ms; operations still running after it
        // end within their own timeouts. Should that take as long again, stop waiting: the
        // outbox is already on disk (or logged) and the log is flushed here.
        std::promise<void> stopped;
        auto done = stopped.get_future();
        std::thread stopper([&] {
            rt.shutdown();
            stopped.set_value();
        });
        if (done.wait_for(2 * cmd.config->shutdown_timeout) != std::future_status::ready) {
            log.flush();
            std::cout << "offerd: in-flight work did not finish in time; exiting" << std::endl;
            std::_Exit(0);
        }
        stopper.join();
        std::cout << "offerd: stopped" << std::endl;
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "offerd: " << e.what() << '\n';
        return 1;
    }
}

// offerd hash-key NAME: reads a key from stdin (its first line) and prints its keys-file line.
int hash_key(const std::vector<std::string>& args) {
    if (args.size() != 1 || args[0] == "--help" || args[0] == "-h") {
        (args.size() == 1 ? std::cout : std::cerr)
            << "Usage: offerd hash-key NAME < key\n\nReads a key (its first line) from stdin and prints the --api-keys line\n"
               "`NAME:sha256-hex` for it; append `:N/s[:burst]` for a per-client rate limit.\n";
        return args.size() == 1 ? 0 : 2;
    }
    std::string key;
    std::getline(std::cin, key);
    if (!key.empty() && key.back() == '\r') key.pop_back();
    auto line = offerd::key_file_line(args[0], key);
    if (!line) {
        std::cerr << "offerd hash-key: " << line.error().detail << '\n';
        return 2;
    }
    std::cout << *line << '\n';
    return 0;
}

// offerd config --print: the effective serve configuration as a config file.
int config(const std::vector<std::string>& args) {
    const auto cmd = offerd::parse_config_command(args, getenv_lookup);
    (cmd.exit_code == 0 ? std::cout : std::cerr) << cmd.message << (cmd.exit_code == 0 ? "" : "\n");
    return cmd.exit_code;
}

int stream(const std::vector<std::string>& args) {
    auto cmd = offerd::parse_stream_command(args, getenv_lookup);
    if (!cmd.config) {
        (cmd.exit_code == 0 ? std::cout : std::cerr) << cmd.message << '\n';
        return cmd.exit_code;
    }
    std::signal(SIGPIPE, SIG_IGN);
    // The summary file is opened before a row is sent: a path that cannot be written is a usage error.
    std::ofstream summary_file;
    if (const auto& path = cmd.config->summary_json; !path.empty() && path != "-") {
        summary_file.open(path, std::ios::trunc);
        if (!summary_file) {
            std::cerr << "offerd stream: --summary-json: cannot write '" << path << "': " << std::strerror(errno) << '\n';
            return 2;
        }
    }
    offerd::progress_options progress;
    progress.terminal = isatty(STDERR_FILENO) != 0;
    progress.every = std::chrono::milliseconds(progress.terminal ? 200 : 5000);
    // Best effort and quiet: without the permission the stream runs as before (see --help).
    if (cmd.config->realtime_priority > 0) (void)offerd::request_realtime(cmd.config->realtime_priority);
    // Ctrl-C stops sending, waits for the rows in flight and prints the summary (exit 130).
    auto summary = offerd::run_stream(*cmd.config, std::cout, std::cerr, progress, {SIGINT});
    if (!summary) {
        std::cerr << "offerd stream: " << summary.error().detail << '\n';
        return 2;
    }
    // With jsonl rows, stdout stays one JSON object a line: the text summary goes to stderr.
    (cmd.config->output == offerd::stream_output::jsonl ? std::cerr : std::cout) << offerd::format_summary(*summary) << std::endl;
    if (cmd.config->summary_json == "-") std::cout << offerd::format_summary_json(*summary) << std::endl;
    if (summary_file.is_open()) {
        summary_file << offerd::format_summary_json(*summary) << '\n';
        summary_file.close();
        if (!summary_file) {
            std::cerr << "offerd stream: --summary-json: writing '" << cmd.config->summary_json << "' failed\n";
            return std::max(1, offerd::stream_exit_status(*summary));
        }
    }
    return offerd::stream_exit_status(*summary);
}

int generate(const std::vector<std::string>& args) {
    auto cmd = offerd::parse_generate_command(args, getenv_lookup);
    if (!cmd.config) {
        (cmd.exit_code == 0 ? std::cout : std::cerr) << cmd.message << '\n';
        return cmd.exit_code;
    }
    if (cmd.config->output.empty()) {
        offerd::generate_csv(std::cout, cmd.config->options);
        std::cout.flush();
        return std::cout ? 0 : 1;
    }
    std::ofstream out(cmd.config->output, std::ios::binary | std::ios::trunc);
    if (!out) {
        std::cerr << "offerd generate: cannot write '" << cmd.config->output << "'\n";
        return 1;
    }
    offerd::generate_csv(out, cmd.config->options);
    out.close();
    if (!out) {
        std::cerr << "offerd generate: write to '" << cmd.config->output << "' failed\n";
        return 1;
    }
    return 0;
}

int report(const std::vector<std::string>& args) {
    auto cmd = offerd::parse_report_command(args, getenv_lookup);
    if (!cmd.config) {
        (cmd.exit_code == 0 ? std::cout : std::cerr) << cmd.message << '\n';
        return cmd.exit_code;
    }
    std::ifstream in(cmd.config->log);
    if (!in) {
        std::cerr << "offerd report: cannot open '" << cmd.config->log << "'\n";
        return 2;
    }
    const auto r = offerd::build_report(in);
    std::cout << offerd::render_text(r);
    if (!cmd.config->html.empty()) {
        std::ofstream out(cmd.config->html, std::ios::trunc);
        out << offerd::render_html(r);
        if (!out.flush()) {
            std::cerr << "offerd report: cannot write '" << cmd.config->html << "'\n";
            return 1;
        }
        std::cout << "\nHTML report: " << cmd.config->html << '\n';
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    const std::string command = args.empty() ? "" : args.front();
    if (command == "stream" || command == "generate" || command == "serve" || command == "report" || command == "hash-key" ||
        command == "config")
        args.erase(args.begin());
    if (command == "hash-key") return hash_key(args);
    if (command == "config") return config(args);
    if (command == "stream") return stream(args);
    if (command == "report") return report(args);
    if (command == "generate") return generate(args);
    if (command == "--version" || command == "version") {
        const auto& b = offerd::this_build();
        std::cout << "offerd " << b.version << "\nrevision: " << b.revision << "\ncompiler: " << b.compiler << "\nBoost: " << b.boost << "\nmalloc: " << b.malloc << '\n';
        return 0;
    }
    if (command == "help" || command == "--help" || command == "-h") {
        std::cout << offerd::top_level_help() << '\n'
                  << offerd::parse_serve_command({"--help"}, getenv_lookup).message << '\n';
        return 0;
    }
    if (!command.empty() && command != "serve" && command.front() != '-') {
        std::cerr << "offerd: unknown command '" << command << "' (expected serve, stream, generate, report, hash-key or config; see offerd --help)\n";
        return 2;
    }
    return serve(args);
}
