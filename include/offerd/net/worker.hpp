// One worker thread as the code that runs on it sees it, passed as one value instead of an
// io_context, an index and the affinity table threaded through every signature.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <cstddef>
#include <span>
#include <vector>

namespace offerd {

namespace asio = boost::asio;
class loopback_affinity;

struct worker_context {
    asio::any_io_executor executor;         // of the worker's event loop: one thread runs it
    std::size_t index = 0;                  // its place among the process's workers; per-worker pools and counters use it
    loopback_affinity* affinity = nullptr;  // this process's loopback table (see loopback_affinity); null: none
};

// The process's workers in index order (workers[i].index == i), sharing one affinity table.
using worker_set = std::span<const worker_context>;

// One worker_context per io_context, indexed in order.
inline std::vector<worker_context> make_workers(std::span<asio::io_context* const> loops, loopback_affinity* affinity = nullptr) {
    std::vector<worker_context> out;
    out.reserve(loops.size());
    for (std::size_t i = 0; i < loops.size(); ++i) out.push_back(worker_context{loops[i]->get_executor(), i, affinity});
    return out;
}

}  // namespace offerd
