// OMP_WAIT_POLICY=passive unless the environment chooses: LibTorch's OpenMP (the torch wheel's
// libgomp) otherwise lets each worker that finished a parallel region spin before it sleeps,
// and those spins take the cores gRPC's and HTTP's threads need between batches. On 2 cores,
// mlp at batch 1 with 4 clients: 2,274 requests/s and 596 µs of CPU per request with libgomp's
// default, 3,254 and 286 µs with passive; p99 8.7 ms against 2.4 ms (bench/omp_wait.py,
// bench/results/2026-12-07-omp-wait.md). Idle, neither burns CPU.
#pragma once

namespace modeld::app {

// libgomp reads the policy once, when it is loaded, before main() runs; so when
// OMP_WAIT_POLICY is unset this sets it to passive and re-executes modeld (/proc/self/exe,
// same arguments and pid). Call first thing in main. Returns when the environment already
// set a policy, or when re-executing failed (modeld then runs with libgomp's default).
void PreferPassiveOpenMpWait(char** argv);

}  // namespace modeld::app
