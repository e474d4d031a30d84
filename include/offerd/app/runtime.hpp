// start_roles: the wiring shared by main and the end-to-end tests. Binds every listener the
// config asks for, runs them on one io_context per worker thread, shuts down gracefully.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "offerd/app/config.hpp"
#include "offerd/net/worker.hpp"

namespace offerd {

class http_server;
class logger;
class loopback_affinity;
class history_store;
class metrics_registry;
class orchestrator_service;
class router;
class security_gate;

class runtime {
public:
    // Binds all listeners (port 0 picks a free one). Throws std::runtime_error with a one-line
    // message when a listener cannot bind, an upstream URL is invalid or a TLS file cannot be used.
    runtime(const app_config& cfg, logger& log);
    ~runtime();
    runtime(const runtime&) = delete;
    runtime& operator=(const runtime&) = delete;

    // Starts the worker threads and the listeners.
    void start();
    // Stops accepting, lets in-flight requests finish (orchestrator first, then the services it
    // calls) up to cfg.shutdown_timeout, then closes everything and joins the threads. Idempotent.
    void shutdown();

    // 0 when the role is not running here.
    std::uint16_t port(role r) const;
    std::string base_url(role r) const;
    // The member-data store when that role runs here (tests inspect it), else nullptr.
    history_store* store() const noexcept { return store_.get(); }
    std::size_t workers() const noexcept { return workers_.size(); }
    // The route table a role's listener serves (its API document's tests enumerate it), else nullptr.
    std::shared_ptr<const router> routes(role r) const;
    // Re-reads the API keys file (SIGHUP): on success the number of clients, else why not (the
    // keys in use stay). Thread-safe.
    result<std::size_t> reload_keys();

private:
    void start_throughput_reporter();

    app_config cfg_;
    logger& log_;
    std::vector<std::unique_ptr<asio::io_context>> workers_;
    std::vector<asio::io_context*> worker_ptrs_;
    std::unique_ptr<loopback_affinity> affinity_;  // shared by the listeners and the orchestrator's clients
    std::vector<worker_context> worker_set_;       // the workers with affinity_, as listeners and clients take them
    std::vector<std::unique_ptr<asio::executor_work_guard<asio::io_context::executor_type>>> guards_;
    std::vector<std::thread> threads_;
    std::shared_ptr<history_store> store_;
    std::unique_ptr<orchestrator_service> orchestrator_;
    std::unique_ptr<http_server> servers_[4];  // indexed by role bit position
    std::shared_ptr<const router> routers_[4];  // the servers' route tables, same index
    std::shared_ptr<metrics_registry> metrics_;
    std::shared_ptr<security_gate> security_;  // guards every listener's router
    struct reporter;
    std::shared_ptr<reporter> reporter_;
    bool started_ = false;
    bool stopped_ = false;
};

}  // namespace offerd
