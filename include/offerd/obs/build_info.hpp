// What this binary is: version, git revision, compiler, Boost version and allocator (offerd
// --version and the offerd_build_info metric).
#pragma once

#include <string>

namespace offerd {

struct build_info {
    std::string version;   // the project version
    std::string revision;  // `git rev-parse --short HEAD` when configured, "unknown" outside git
    std::string compiler;  // e.g. "GCC 12.2.0"
    std::string boost;     // e.g. "1.81.0"
    std::string malloc;    // "tcmalloc" when tcmalloc serves malloc (linked, or preloaded), else "system"
};

const build_info& this_build();

// The labels of offerd_build_info: version="…",revision="…",compiler="…",boost="…",malloc="…".
std::string build_info_labels();

}  // namespace offerd
