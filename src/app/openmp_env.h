// A short OpenMP spin unless the environment chooses: LibTorch's OpenMP (the torch wheel's
// libgomp) by default lets each worker that finished a parallel region spin for 300,000
// rounds before it sleeps, and between batches those spins take the cores gRPC's and HTTP's
// threads need; never spinning (OMP_WAIT_POLICY=passive) makes a model of many operators wait
// for its threads to wake at each one. GOMP_SPINCOUNT=3000 keeps the threads through the
// gaps inside one forward pass and lets them sleep between requests. On 2 cores, requests/s
// (bench/omp_wait.py, bench/results/2026-12-07-omp-wait.md; libgomp's default / passive /
// modeld's):
//   mlp, 4 Python clients on the same cores:  2,362 / 3,634 / 3,505
//   cnn, 1 client (latency of many operators): 3,451 / 1,547 / 2,744
//   mlp, 64 clients (saturation):              14,274 / 21,337 / 20,207
// Idle, none of them burns CPU.
#pragma once

namespace modeld::app {

inline constexpr char kDefaultOpenMpSpinCount[] = "3000";

// libgomp reads its settings once, when it is loaded, before main() runs; so when neither
// OMP_WAIT_POLICY nor GOMP_SPINCOUNT is set, this sets GOMP_SPINCOUNT and re-executes modeld
// (/proc/self/exe, same arguments and pid). Call first thing in main. Returns when the
// environment already chose, or when re-executing failed (modeld then runs with libgomp's
// default).
void PreferShortOpenMpSpin(char** argv);

}  // namespace modeld::app
