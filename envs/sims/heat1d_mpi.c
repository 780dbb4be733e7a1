/* heat1d_mpi.c: 1-D heat control as an MPI simulator for rlfarm/Subprocess-v0.
 *
 * Physics: u_t = alpha u_xx + gain * sum_k a_k H_k(x) on (0, 1) with u = 0 at both ends;
 * n interior nodes x_i = (i + 1) / (n + 1); K heaters, heater k heating the k-th of K equal
 * runs of nodes with power a_k in [0, 1]. Explicit Euler with the 3-point stencil, stable for
 * dt <= dx^2 / (2 alpha): each action takes `substeps` steps of dt = control_dt / substeps,
 * with substeps the smallest count that keeps dt <= 0.95 of the limit.
 * Target: max(0, c1 sin(pi x) + c2 sin(2 pi x)), c1 = 0.3 + 0.7 u1, c2 = 0.6 u2 - 0.3 from
 * rlfarm's two reset uniforms; the rod starts at u = 0.
 * Observation (obs_dim = 2n): the temperatures, then the target. Action: box [0, 1]^K.
 * Reward: -mean((u - target)^2) - energy_cost * mean(a). No termination (rlfarm truncates).
 *
 * Parallel: the n nodes are split into contiguous blocks, one per rank; every Euler step
 * exchanges one ghost node per copy with each neighbour (MPI_Sendrecv, all copies in one
 * message per direction) and updates the block. Rank 0
 * speaks the protocol on stdin/stdout, broadcasts each request to the other ranks, gathers
 * the blocks and computes the rewards from the gathered rod in node order, so the numbers
 * are the same for any rank count (each node's update reads the same three values).
 *
 * Build: mpicc -O2 -o heat1d_mpi heat1d_mpi.c -lm     Run: mpirun -n 2 ./heat1d_mpi [n K]
 */
#include <math.h>
#include <mpi.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

static const double ALPHA = 1.0, CONTROL_DT = 0.01, GAIN = 20.0, ENERGY_COST = 0.05;

static int rank, size, n, K, C, lo, hi, local, substeps;
static double dx, ratio, dt;
static double *u, *next, *target, *power; /* u, next: [C][local + 2] with ghosts; target: [C][n] on rank 0 */

static void read_exact(void *buffer, size_t bytes, int *ok) {
    if (*ok && fread(buffer, 1, bytes, stdin) != bytes) *ok = 0;
}

static void write_reply(const void *data, size_t bytes) {
    fwrite(data, 1, bytes, stdout);
}

static int block_start(int r) { return (int)((long)n * r / size); }

/* Heater power per local node for one copy: gain * a_k for the heater whose run holds node i. */
static void heater_field(const float *action, double *out) {
    for (int i = 0; i < local; i++) {
        int node = lo + i, k = (int)((long)node * K / n);
        out[i] = GAIN * (double)action[k];
    }
}

static void euler_steps(const float *actions, double *halo) {
    int left = rank > 0 ? rank - 1 : MPI_PROC_NULL, right = rank < size - 1 ? rank + 1 : MPI_PROC_NULL;
    double *send_l = halo, *send_r = halo + C, *from_l = halo + 2 * C, *from_r = halo + 3 * C;
    for (int c = 0; c < C; c++) heater_field(actions + (size_t)c * K, power + (size_t)c * local);
    for (int s = 0; s < substeps; s++) {
        /* one message per direction carries every copy's edge node: 2 messages per Euler step */
        for (int c = 0; c < C; c++) {
            send_l[c] = u[(size_t)c * (local + 2) + 1];
            send_r[c] = u[(size_t)c * (local + 2) + local];
            from_l[c] = 0.0, from_r[c] = 0.0; /* the rod's ends stay at 0 */
        }
        MPI_Sendrecv(send_l, C, MPI_DOUBLE, left, 0, from_r, C, MPI_DOUBLE, right, 0, MPI_COMM_WORLD,
                     MPI_STATUS_IGNORE);
        MPI_Sendrecv(send_r, C, MPI_DOUBLE, right, 1, from_l, C, MPI_DOUBLE, left, 1, MPI_COMM_WORLD,
                     MPI_STATUS_IGNORE);
        for (int c = 0; c < C; c++) {
            double *row = u + (size_t)c * (local + 2), *out = next + (size_t)c * (local + 2);
            const double *q = power + (size_t)c * local;
            row[0] = from_l[c], row[local + 1] = from_r[c];
            for (int i = 1; i <= local; i++)
                out[i] = row[i] + ratio * (row[i - 1] - 2.0 * row[i] + row[i + 1]) + dt * q[i - 1];
        }
        double *swap = u; u = next; next = swap;
    }
}

/* Rank 0: the whole rod of every copy, [C][n], from the ranks' blocks. */
static void gather(double *rod, int *counts, int *displs) {
    double *mine = malloc(sizeof(double) * (size_t)(local > 0 ? local : 1));
    for (int c = 0; c < C; c++) {
        memcpy(mine, u + (size_t)c * (local + 2) + 1, sizeof(double) * (size_t)local);
        MPI_Gatherv(mine, local, MPI_DOUBLE, rank == 0 ? rod + (size_t)c * n : NULL, counts, displs,
                    MPI_DOUBLE, 0, MPI_COMM_WORLD);
    }
    free(mine);
}

static void observe(const double *rod, int c, float *obs) {
    for (int i = 0; i < n; i++) {
        obs[i] = (float)rod[(size_t)c * n + i];
        obs[n + i] = (float)target[(size_t)c * n + i];
    }
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a killed launcher takes every rank with it */
#endif
    n = argc > 1 ? atoi(argv[1]) : 32;
    K = argc > 2 ? atoi(argv[2]) : 4;
    if (n < size || K < 1 || K > n) {
        if (rank == 0) fprintf(stderr, "heat1d_mpi: need ranks <= n and 1 <= K <= n (n=%d K=%d)\n", n, K);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    dx = 1.0 / (n + 1);
    double limit = dx * dx / (2.0 * ALPHA);
    substeps = (int)ceil(CONTROL_DT / (0.95 * limit) - 1e-9);
    if (substeps < 1) substeps = 1;
    dt = CONTROL_DT / substeps;
    ratio = ALPHA * dt / (dx * dx);
    lo = block_start(rank), hi = block_start(rank + 1), local = hi - lo;
    int *counts = malloc(sizeof(int) * size), *displs = malloc(sizeof(int) * size);
    for (int r = 0; r < size; r++) displs[r] = block_start(r), counts[r] = block_start(r + 1) - block_start(r);

    if (rank == 0) {
        uint32_t hello[5] = {1, (uint32_t)(2 * n), 1, (uint32_t)K, 2};
        write_reply("RLFM", 4);
        write_reply(hello, sizeof hello);
        fflush(stdout);
    }
    double *rod = NULL;
    float *obs = NULL, *actions = NULL, *rewards = NULL;
    double *halo = NULL;
    unsigned char *terminated = NULL;
    for (;;) {
        unsigned char head[5] = {'Q', 0, 0, 0, 0};
        int ok = 1;
        if (rank == 0) read_exact(head, 5, &ok);
        if (!ok) head[0] = 'Q'; /* end of stdin: the host is gone */
        MPI_Bcast(head, 5, MPI_UNSIGNED_CHAR, 0, MPI_COMM_WORLD);
        uint32_t count;
        memcpy(&count, head + 1, 4);
        if (head[0] == 'N') {
            C = (int)count;
            u = calloc((size_t)C * (local + 2), sizeof(double));
            next = calloc((size_t)C * (local + 2), sizeof(double));
            power = calloc((size_t)C * (local > 0 ? local : 1), sizeof(double));
            actions = calloc((size_t)C * K, sizeof(float));
            halo = calloc((size_t)4 * (C ? C : 1), sizeof(double));
            if (rank == 0) {
                target = calloc((size_t)C * n, sizeof(double));
                rod = calloc((size_t)C * n, sizeof(double));
                obs = calloc((size_t)C * 2 * n, sizeof(float));
                rewards = calloc((size_t)C, sizeof(float));
                terminated = calloc((size_t)C, 1);
            }
        } else if (head[0] == 'R') {
            uint32_t *index = malloc(sizeof(uint32_t) * (count ? count : 1));
            double *unit = malloc(sizeof(double) * 2 * (count ? count : 1));
            if (rank == 0) {
                read_exact(index, sizeof(uint32_t) * count, &ok);
                read_exact(unit, sizeof(double) * 2 * count, &ok);
            }
            MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
            if (!ok) break;
            MPI_Bcast(index, (int)count, MPI_UINT32_T, 0, MPI_COMM_WORLD);
            for (uint32_t j = 0; j < count; j++)
                memset(u + (size_t)index[j] * (local + 2), 0, sizeof(double) * (local + 2));
            if (rank == 0) {
                for (uint32_t j = 0; j < count; j++) {
                    double c1 = 0.3 + 0.7 * unit[2 * j], c2 = 0.6 * unit[2 * j + 1] - 0.3;
                    for (int i = 0; i < n; i++) {
                        double x = (i + 1) * dx, t = c1 * sin(M_PI * x) + c2 * sin(2.0 * M_PI * x);
                        target[(size_t)index[j] * n + i] = t > 0.0 ? t : 0.0;
                        rod[(size_t)index[j] * n + i] = 0.0;
                    }
                    observe(rod, (int)index[j], obs + (size_t)j * 2 * n);
                }
                write_reply("RLFM", 4);
                write_reply(obs, sizeof(float) * 2 * n * count);
                fflush(stdout);
            }
            free(index);
            free(unit);
        } else if (head[0] == 'S') {
            if (rank == 0) read_exact(actions, sizeof(float) * (size_t)C * K, &ok);
            MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
            if (!ok) break;
            MPI_Bcast(actions, C * K, MPI_FLOAT, 0, MPI_COMM_WORLD);
            euler_steps(actions, halo);
            gather(rod, counts, displs);
            if (rank == 0) {
                for (int c = 0; c < C; c++) {
                    double err = 0.0, spent = 0.0;
                    for (int i = 0; i < n; i++) {
                        double d = rod[(size_t)c * n + i] - target[(size_t)c * n + i];
                        err += d * d;
                    }
                    for (int k = 0; k < K; k++) spent += actions[(size_t)c * K + k];
                    rewards[c] = (float)(-err / n - ENERGY_COST * spent / K);
                    observe(rod, c, obs + (size_t)c * 2 * n);
                }
                write_reply("RLFM", 4);
                write_reply(obs, sizeof(float) * (size_t)C * 2 * n);
                write_reply(rewards, sizeof(float) * (size_t)C);
                write_reply(terminated, (size_t)C);
                fflush(stdout);
            }
        } else {
            break;
        }
    }
    MPI_Finalize();
    return 0;
}
