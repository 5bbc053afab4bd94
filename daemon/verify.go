package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iamgate/iamgate/mapping"
	"github.com/iamgate/iamgate/sigv4"
)

// VerifyToken checks one token exactly as the webhook does, without cache or mapping: local
// validation (the error is a sigv4.RejectError), then STS (an *STSError), then the identity
// rules of docs/design.md, Identity (an error wrapping mapping.ErrInvalidIdentity). For `iamgate verify` and
// `iamgate explain`; cfg needs ClusterID, Partitions and STS.
func VerifyToken(ctx context.Context, cfg Config, token string, now time.Time) (mapping.Identity, error) {
	hosts, err := sigv4.NewAllowList(cfg.Partitions, cfg.ExtraRegions)
	if err != nil {
		return mapping.Identity{}, err
	}
	var r sigv4.Request
	if err := sigv4.NewValidator(hosts, cfg.MaxClockSkew).Validate([]byte(token), now, &r); err != nil {
		return mapping.Identity{}, err
	}
	stsCfg := cfg.STS
	stsCfg.ClusterID = cfg.ClusterID
	if stsCfg.MaxConcurrency <= 0 {
		stsCfg.MaxConcurrency = 1
	}
	if stsCfg.Timeout <= 0 {
		return mapping.Identity{}, errors.New("cannot verify token: the STS timeout must be positive")
	}
	client := newSTSClient(stsCfg, newMetrics("verify", prometheus.NewRegistry()))
	answer, err := client.getCallerIdentity(ctx, r.Host(), r.URL(), keyVerified)
	if err != nil {
		return mapping.Identity{}, err
	}
	id, err := mapping.NewIdentity(answer.Arn, answer.Account, answer.UserID, string(r.AccessKeyID()))
	if err != nil {
		return mapping.Identity{}, fmt.Errorf("STS answered with an identity iamgate refuses: %w", err)
	}
	return id, nil
}
