"""What the device says while a window is open: neuron-monitor on NeuronCores, NVML on GPUs."""
