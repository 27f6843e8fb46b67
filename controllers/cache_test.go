package controllers

import (
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/taskpilot/taskpilot/api/v1alpha1"
	"github.com/taskpilot/taskpilot/internal/sharding"
)

// TestTheCacheRefusesSettingsThatWatchNothing: without a namespace the membership Leases are
// watched nowhere, and a sharded cache without an identity selects no task; both would leave the
// operator waiting for ever, so they are an error.
func TestTheCacheRefusesSettingsThatWatchNothing(t *testing.T) {
	for name, s := range map[string]Settings{
		"no namespace":            {Identity: "a"},
		"sharded and no identity": {Namespace: "ns", Sharding: true},
	} {
		_, err := CacheByObject(s)
		require.Error(t, err, name)
	}
	byObject, err := CacheByObject(Settings{Namespace: "ns", Identity: "replica-a", Sharding: true})
	require.NoError(t, err)
	for obj, by := range byObject {
		if _, ok := obj.(*v1alpha1.BackgroundTask); ok {
			require.True(t, by.Label.Matches(labels.Set{sharding.LabelShard: "replica-a"}))
			require.False(t, by.Label.Matches(labels.Set{sharding.LabelShard: "replica-b"}))
		}
	}
}
