package sigv4

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Partition describes one AWS partition: its domains, how to recognise its regions, and which
// STS hosts exist in it. A host that does not exist is never allowed: nothing legitimate names
// it, and a token naming it would only cost a failed DNS lookup per review.
//
// The data is frozen here on purpose, so that the host allow-list does not change behind the
// operator's back when a dependency is upgraded. Sources:
//   - domains and region patterns: aws-sdk-go-v2's partition table (v1.48,
//     internal/endpoints/awsrulesfn/partitions.json);
//   - regions: aws-sdk-go-v2/service/sts v1.52's endpoint table
//     (service/sts/internal/endpoints);
//   - dual-stack hosts sts.<region>.<dual-stack domain>: that table defines them for the
//     partitions aws, aws-cn, aws-eusc and aws-us-gov and for none of the ISO partitions;
//   - FIPS hosts: that table names sts-fips.<region>.amazonaws.com for us-east-1, us-east-2,
//     us-west-1 and us-west-2; AWS's list of FIPS endpoints adds ca-central-1 and ca-west-1.
//     In aws-us-gov the FIPS endpoint is the regular host sts.<region>.amazonaws.com (the
//     table's FIPS variant), so no sts-fips.<region>.amazonaws.com is allowed there; its
//     dual-stack FIPS host is sts-fips.<region>.api.aws. Other partitions have no FIPS host.
//     A dual-stack FIPS host sts-fips.<region>.<dual-stack domain> exists only where both a
//     FIPS endpoint and dual-stack do.
type Partition struct {
	ID     string
	Domain string
	// DualStackDomain is the domain of the dual-stack (IPv4 and IPv6) STS hosts; empty when
	// the partition has none.
	DualStackDomain string
	// regionPattern decides whether a region belongs to the partition.
	regionPattern *regexp.Regexp
	// Regions lists the regions that exist today; -sts.extraRegions adds more.
	Regions []string
	// FIPSRegions are the regions with a FIPS host sts-fips.<region>.<Domain>.
	FIPSRegions []string
	// DualStackFIPSRegions are the regions with a FIPS host sts-fips.<region>.<DualStackDomain>.
	DualStackFIPSRegions []string
}

// partitions is ordered so that the first match of a region wins: aws-us-gov must be decided
// before aws, whose pattern also matches "us-gov-…" through its "us-" prefix.
var partitions = []Partition{
	{
		ID: "aws-us-gov", Domain: "amazonaws.com", DualStackDomain: "api.aws",
		regionPattern:        regexp.MustCompile(`^us-gov-\w+-\d+$`),
		Regions:              []string{"us-gov-east-1", "us-gov-west-1"},
		DualStackFIPSRegions: []string{"us-gov-east-1", "us-gov-west-1"},
	},
	{
		ID: "aws-iso-b", Domain: "sc2s.sgov.gov",
		regionPattern: regexp.MustCompile(`^us-isob-\w+-\d+$`),
		Regions:       []string{"us-isob-east-1", "us-isob-west-1"},
	},
	{
		ID: "aws-iso-f", Domain: "csp.hci.ic.gov",
		regionPattern: regexp.MustCompile(`^us-isof-\w+-\d+$`),
		Regions:       []string{"us-isof-east-1", "us-isof-south-1"},
	},
	{
		ID: "aws-iso", Domain: "c2s.ic.gov",
		regionPattern: regexp.MustCompile(`^us-iso-\w+-\d+$`),
		Regions:       []string{"us-iso-east-1", "us-iso-west-1"},
	},
	{
		ID: "aws-iso-e", Domain: "cloud.adc-e.uk",
		regionPattern: regexp.MustCompile(`^eu-isoe-\w+-\d+$`),
		Regions:       []string{"eu-isoe-west-1"},
	},
	{
		ID: "aws-cn", Domain: "amazonaws.com.cn", DualStackDomain: "api.amazonwebservices.com.cn",
		regionPattern: regexp.MustCompile(`^cn-\w+-\d+$`),
		Regions:       []string{"cn-north-1", "cn-northwest-1"},
	},
	{
		ID: "aws-eusc", Domain: "amazonaws.eu", DualStackDomain: "api.amazonwebservices.eu",
		regionPattern: regexp.MustCompile(`^eusc-(de)-\w+-\d+$`),
		Regions:       []string{"eusc-de-east-1"},
	},
	{
		ID: "aws", Domain: "amazonaws.com", DualStackDomain: "api.aws",
		regionPattern: regexp.MustCompile(`^(us|eu|ap|sa|ca|me|af|il|mx)-\w+-\d+$`),
		Regions: []string{
			"af-south-1", "ap-east-1", "ap-east-2",
			"ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
			"ap-south-1", "ap-south-2",
			"ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4",
			"ap-southeast-5", "ap-southeast-6", "ap-southeast-7",
			"ca-central-1", "ca-west-1",
			"eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2",
			"eu-west-1", "eu-west-2", "eu-west-3",
			"il-central-1", "me-central-1", "me-south-1", "me-west-1", "mx-central-1",
			"sa-east-1", "sa-west-1",
			"us-east-1", "us-east-2", "us-west-1", "us-west-2",
		},
		FIPSRegions:          []string{"ca-central-1", "ca-west-1", "us-east-1", "us-east-2", "us-west-1", "us-west-2"},
		DualStackFIPSRegions: []string{"ca-central-1", "ca-west-1", "us-east-1", "us-east-2", "us-west-1", "us-west-2"},
	},
}

// globalHost is the legacy global endpoint: partition aws, signing region us-east-1.
const globalHost = "sts.amazonaws.com"

// PartitionByID returns the partition with the given ID ("aws", "aws-cn", …).
func PartitionByID(id string) (*Partition, bool) {
	for i := range partitions {
		if partitions[i].ID == id {
			return &partitions[i], true
		}
	}
	return nil, false
}

// PartitionIDs lists the known partition IDs.
func PartitionIDs() []string {
	ids := make([]string, len(partitions))
	for i := range partitions {
		ids[i] = partitions[i].ID
	}
	sort.Strings(ids)
	return ids
}

// PartitionForRegion returns the partition a region belongs to by its name pattern.
func PartitionForRegion(region string) (*Partition, bool) {
	for i := range partitions {
		if partitions[i].regionPattern.MatchString(region) {
			return &partitions[i], true
		}
	}
	return nil, false
}

// RegionalHost is the regional STS endpoint host of a region: sts.<region>.<domain>.
func (p *Partition) RegionalHost(region string) string {
	return "sts." + region + "." + p.Domain
}

// hostInfo is what an allowed host tells: which partition and which signing region.
// Values are shared by every Request that names the host and are never modified.
type hostInfo struct {
	host      string
	partition string
	region    string
}

// AllowList is the static set of STS hosts a token may name (SPEC V4). It is immutable once
// built and safe for concurrent use.
type AllowList struct {
	hosts map[string]*hostInfo
}

// NewAllowList builds the allow-list for the given partitions (at least one) from the
// built-in regions plus extraRegions. An extra region must belong to one of the partitions
// by its name pattern, otherwise it is an error: a typo must not widen the list silently.
func NewAllowList(partitionIDs []string, extraRegions []string) (*AllowList, error) {
	if len(partitionIDs) == 0 {
		return nil, fmt.Errorf("cannot build STS host allow-list: no partition given")
	}
	al := &AllowList{hosts: make(map[string]*hostInfo)}
	enabled := make(map[string]*Partition)
	for _, id := range partitionIDs {
		p, ok := PartitionByID(id)
		if !ok {
			return nil, fmt.Errorf("cannot build STS host allow-list: unknown partition %q (known: %s)",
				id, strings.Join(PartitionIDs(), ", "))
		}
		enabled[p.ID] = p
		for _, r := range p.Regions {
			al.addRegion(p, r)
		}
	}
	for _, r := range extraRegions {
		p, ok := PartitionForRegion(r)
		if !ok || enabled[p.ID] == nil {
			return nil, fmt.Errorf("cannot add extra region %q: it belongs to none of the partitions %s",
				r, strings.Join(partitionIDs, ", "))
		}
		al.addRegion(p, r)
	}
	if enabled["aws"] != nil {
		al.hosts[globalHost] = &hostInfo{host: globalHost, partition: "aws", region: "us-east-1"}
	}
	return al, nil
}

// addRegion allows the regional hosts of region that exist: the regular one, the dual-stack
// one where the partition has dual-stack, and the FIPS ones where the region has them.
func (al *AllowList) addRegion(p *Partition, region string) {
	add := func(h string) { al.hosts[h] = &hostInfo{host: h, partition: p.ID, region: region} }
	add("sts." + region + "." + p.Domain)
	if p.DualStackDomain != "" {
		add("sts." + region + "." + p.DualStackDomain)
	}
	if slices.Contains(p.FIPSRegions, region) {
		add("sts-fips." + region + "." + p.Domain)
	}
	if p.DualStackDomain != "" && slices.Contains(p.DualStackFIPSRegions, region) {
		add("sts-fips." + region + "." + p.DualStackDomain)
	}
}

// Hosts returns every allowed host, sorted (for docs and `-dryRun` output).
func (al *AllowList) Hosts() []string {
	out := make([]string, 0, len(al.hosts))
	for h := range al.hosts {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

// lookup finds an allowed host. lowerHost must already be in lower case.
func (al *AllowList) lookup(lowerHost []byte) *hostInfo {
	return al.hosts[string(lowerHost)] // the compiler does not allocate for this conversion
}
