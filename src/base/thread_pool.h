// One pool of worker threads, created once. `run(fn)` calls fn(thread_index, n_threads) on every
// thread (the caller is thread 0) and returns when all are done. Workers spin briefly before
// sleeping so back-to-back kernel calls during decoding do not pay a futex wake-up each time.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace kandil {

class ThreadPool {
 public:
  using Task = std::function<void(int thread_index, int n_threads)>;

  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  void run(const Task& task);

  // Splits [0, n) into contiguous ranges, one per thread: fn(begin, end).
  template <class F>
  void parallel_for(int64_t n, F&& fn) {
    if (n <= 0) return;
    if (n_threads_ == 1 || n == 1) {
      fn(int64_t{0}, n);
      return;
    }
    run([&](int ith, int nth) {
      int64_t per = (n + nth - 1) / nth;
      int64_t b = per * ith;
      int64_t e = b + per < n ? b + per : n;
      if (b < e) fn(b, e);
    });
  }

  // Number of hardware threads available to this process (at least 1).
  static int hardware_threads();

 private:
  void worker(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  const Task* task_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
};

}  // namespace kandil
