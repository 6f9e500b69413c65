package client

import "fmt"

func (a *Agent) selfUpdate(st *State, name string, c *ComponentState) error {
	return fmt.Errorf("self-update is not available yet")
}
