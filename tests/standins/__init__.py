"""Stand-ins for the Neuron software (``torch_neuronx``, ``neuron-ls``) and the fixtures that install them."""
