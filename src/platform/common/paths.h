// Where the platform keeps its files (XDG base directories) and small file helpers.
#pragma once

#include <string>

#include "kandil/result.h"

namespace kandil::platform {

// $XDG_CONFIG_HOME/kandil, else $HOME/.config/kandil.
std::string config_dir();
// $XDG_DATA_HOME/kandil, else $HOME/.local/share/kandil.
std::string data_dir();
// The sessions database, the REPL history file and the audit log folder under data_dir().
std::string database_path();
std::string history_path();
std::string audit_dir();

// Creates a directory and its parents (mode 0700 for new ones); errors name the path.
Result<void> make_dirs(const std::string& path);
// Whole-file read; errors name the file.
Result<std::string> read_file(const std::string& path);
// Writes to a temporary sibling, fsyncs and renames over `path` (never a torn file).
Result<void> write_file_atomic(const std::string& path, const std::string& data, int mode = 0644);

// The current UTC time as "YYYY-MM-DDTHH:MM:SS.mmmZ".
std::string now_iso8601();
// Milliseconds since the Unix epoch.
int64_t now_unix_ms();
// Formats Unix milliseconds as ISO-8601 UTC.
std::string iso8601_from_ms(int64_t ms);
// A random lowercase hex id of `bytes` bytes.
std::string random_hex(size_t bytes);

}  // namespace kandil::platform
