"""Our foreach Adam takes the same steps as torch.optim.Adam."""
from __future__ import annotations

import torch

from rlfarm.agents.optim import Adam


def test_matches_torch_adam():
    torch.manual_seed(0)
    ours_net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 2))
    ref_net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 2))
    ref_net.load_state_dict(ours_net.state_dict())
    ours = Adam(ours_net.parameters(), lr=3e-3, eps=1e-5)
    ref = torch.optim.Adam(ref_net.parameters(), lr=3e-3, eps=1e-5, foreach=False)
    for step in range(20):
        x = torch.randn(16, 5)
        for net, opt in ((ours_net, ours), (ref_net, ref)):
            opt.zero_grad()
            net(x).pow(2).mean().backward()
            opt.step()
        if step == 10:  # lr changes through param_groups like torch's
            ours.param_groups[0]["lr"] = ref.param_groups[0]["lr"] = 1e-3
    for a, b in zip(ours_net.parameters(), ref_net.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_state_round_trip_continues_identically():
    net = torch.nn.Linear(3, 2)
    opt = Adam(net.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        net(torch.ones(1, 3)).sum().backward()
        opt.step()
    clone = torch.nn.Linear(3, 2)
    clone.load_state_dict(net.state_dict())
    clone_opt = Adam(clone.parameters(), lr=0.5)
    clone_opt.load_state_dict(opt.state_dict())
    for model, optimizer in ((net, opt), (clone, clone_opt)):
        optimizer.zero_grad()
        model(torch.ones(1, 3)).sum().backward()
        optimizer.step()
    torch.testing.assert_close(net.weight, clone.weight)


def test_step_on_device_matches_step():
    # The CUDA-graph form of the update reads lr and the step count from tensors; on CPU
    # it must take the same steps as `step`, also across an lr change and a reload of scalars.
    torch.manual_seed(1)
    nets = [torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1)) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    host, device = Adam(nets[0].parameters(), lr=3e-3, eps=1e-5), Adam(nets[1].parameters(), lr=3e-3, eps=1e-5)
    for step in range(30):
        if step % 10 == 0:  # a new update: lr may change; scalars go to the device once
            host.param_groups[0]["lr"] = device.param_groups[0]["lr"] = 3e-3 / (1 + step)
            device.load_device_scalars()
        x = torch.randn(8, 4)
        for net, optimizer in zip(nets, (host, device)):
            optimizer.zero_grad()
            net(x).pow(2).mean().backward()
        host.step()
        device.step_on_device()
        device.steps += 1
    assert device.steps == host.steps == 30
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_load_state_dict_keeps_the_moment_tensors():
    # A captured CUDA graph reads the moments at fixed addresses: loading must copy in place.
    net = torch.nn.Linear(3, 2)
    opt = Adam(net.parameters(), lr=1e-2)
    addresses = [t.data_ptr() for t in opt.state_tensors()]
    other = Adam(torch.nn.Linear(3, 2).parameters(), lr=1e-2)
    for tensor in other.state_tensors():
        tensor.fill_(0.25)
    opt.load_state_dict(other.state_dict())
    assert [t.data_ptr() for t in opt.state_tensors()] == addresses
    assert all(bool((t == 0.25).all()) for t in opt.state_tensors())
