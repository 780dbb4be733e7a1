/* CartPole (gymnasium's CartPole-v1 physics, float32) as an external simulator for
 * rlfarm/Subprocess-v0. Protocol: envs/subprocess_env.py's docstring and docs/envs.md.
 * Build: cc -O2 -o cartpole_sim cartpole_sim.c -lm */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void read_all(void *buf, size_t n) {
    if (n && fread(buf, 1, n, stdin) != n) exit(0); /* EOF: the host is gone */
}
static void write_all(const void *buf, size_t n) { fwrite(buf, 1, n, stdout); }
static const char MAGIC[4] = {'R', 'L', 'F', 'M'};

int main(void) {
    /* handshake: magic, version, obs_dim, action kind (0 discrete), action size, reset draws */
    uint32_t hello[5] = {1, 4, 0, 2, 4};
    write_all(MAGIC, 4); write_all(hello, sizeof hello); fflush(stdout);
    float *state = NULL, *out = NULL, *reward = NULL; uint8_t *done = NULL;
    int32_t *actions = NULL; uint32_t *index = NULL; double *unit = NULL;
    uint32_t copies = 0;
    for (;;) {
        uint8_t op; uint32_t count;
        read_all(&op, 1); read_all(&count, 4);
        if (op == 'N') {  /* copies held by this process */
            copies = count;
            state = calloc(4 * copies, sizeof *state); out = malloc(4 * copies * sizeof *out);
            reward = malloc(copies * sizeof *reward); done = malloc(copies);
            actions = malloc(copies * sizeof *actions); index = malloc(copies * sizeof *index);
            unit = malloc(4 * copies * sizeof *unit);
        } else if (op == 'R') {  /* reset `count` copies from 4 uniforms each */
            read_all(index, 4 * count); read_all(unit, 8 * 4 * count);
            for (uint32_t k = 0; k < count; k++)
                for (int j = 0; j < 4; j++) {
                    state[4 * index[k] + j] = (float)(unit[4 * k + j] * 0.1 - 0.05);
                    out[4 * k + j] = state[4 * index[k] + j];
                }
            write_all(MAGIC, 4); write_all(out, 4 * 4 * count);
        } else if (op == 'S') {  /* one step of every copy */
            read_all(actions, 4 * copies);
            for (uint32_t i = 0; i < copies; i++) {
                float *s = state + 4 * i;
                float force = actions[i] == 1 ? 10.0f : -10.0f;
                float c = cosf(s[2]), sn = sinf(s[2]);
                float temp = (force + 0.05f * s[3] * s[3] * sn) / 1.1f;
                float acc = (9.8f * sn - c * temp) / (0.5f * (4.0f / 3.0f - 0.1f * c * c / 1.1f));
                float xacc = temp - 0.05f * acc * c / 1.1f;
                s[0] += 0.02f * s[1]; s[2] += 0.02f * s[3];
                s[1] += 0.02f * xacc; s[3] += 0.02f * acc;
                memcpy(out + 4 * i, s, 4 * sizeof *s);
                reward[i] = 1.0f;
                done[i] = fabsf(s[0]) > 2.4f || fabsf(s[2]) > (float)(12 * 2 * M_PI / 360);
            }
            write_all(MAGIC, 4); write_all(out, 16 * copies);
            write_all(reward, 4 * copies); write_all(done, copies);
        } else {
            return 0;  /* 'Q' or anything unknown */
        }
        fflush(stdout);
    }
}
