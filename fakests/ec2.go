package fakests

import (
	"sort"
	"strconv"
)

const ec2XMLNS = "http://ec2.amazonaws.com/doc/2016-11-15/"

// EC2 errors of DescribeInstances' parameters, with EC2's codes.
var (
	errFilterInvalid = &awsError{CodeInvalidParameterValue, 400,
		"The filter is invalid (the fake knows the instance-id filter only)", CodeInvalidParameterValue, 400}
	errMaxResults = &awsError{CodeInvalidParameterValue, 400,
		"Value for parameter maxResults is invalid. Expecting a value between 5 and 1000.", CodeInvalidParameterValue, 400}
	errNextToken = &awsError{CodeInvalidParameterValue, 400,
		"The value for parameter NextToken is invalid", CodeInvalidParameterValue, 400}
	errMaxResultsWithIDs = &awsError{CodeInvalidParameterCombination, 400,
		"The parameter instancesSet cannot be used with the parameter maxResults", CodeInvalidParameterCombination, 400}
)

// describeInstances answers EC2 DescribeInstances in EC2's XML shape, one reservation per
// instance, sorted by instance ID, like EC2:
//   - InstanceId.N selects instances (every instance when none is given); an unknown ID fails
//     the whole call with InvalidInstanceID.NotFound, a malformed one with
//     InvalidInstanceID.Malformed;
//   - Filter.N.Name=instance-id with Filter.N.Value.M narrows the answer to those IDs (any of
//     the values; several filters all apply). Unknown or malformed values simply match nothing,
//     without an error, as in EC2, which is what lets a client look up a batch with one unknown
//     ID. Values match exactly (EC2's * and ? wildcards are not implemented). Any other filter
//     name is InvalidParameterValue;
//   - MaxResults (5 to 1000, not with InstanceId.N) pages the answer, NextToken continues it.
func (s *Server) describeInstances(c *call) {
	var ids []string
	for i := 1; ; i++ {
		v := c.param("InstanceId." + strconv.Itoa(i))
		if v == nil {
			break
		}
		ids = append(ids, string(v))
	}
	var filters []map[string]bool // instance-id values per filter
	for i := 1; ; i++ {
		prefix := "Filter." + strconv.Itoa(i) + "."
		name := c.param(prefix + "Name")
		if name == nil {
			break
		}
		if string(name) != "instance-id" {
			s.fail(c, errFilterInvalid)
			return
		}
		values := map[string]bool{}
		for j := 1; ; j++ {
			v := c.param(prefix + "Value." + strconv.Itoa(j))
			if v == nil {
				break
			}
			values[string(v)] = true
		}
		filters = append(filters, values)
	}
	maxResults, offset := 0, 0
	if v := c.param("MaxResults"); v != nil {
		n, err := strconv.Atoi(string(v))
		switch {
		case len(ids) > 0:
			s.fail(c, errMaxResultsWithIDs)
			return
		case err != nil || n < 5 || n > 1000:
			s.fail(c, errMaxResults)
			return
		}
		maxResults = n
	}
	if v := c.param("NextToken"); v != nil {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 0 {
			s.fail(c, errNextToken)
			return
		}
		offset = n
	}

	var found []Instance
	switch {
	case len(ids) == 0 && len(filters) > 0:
		// Only instances the first filter names can match: look its values up rather than
		// sort every instance (a fleet of 100,000 made each lookup take milliseconds).
		for id := range filters[0] {
			if in, ok := s.store.instance(id); ok {
				found = append(found, in)
			}
		}
	case len(ids) == 0:
		found = s.store.allInstances()
	}
	for _, id := range ids {
		if !checkInstanceID(id) {
			s.fail(c, errInstanceMalformed)
			return
		}
		in, ok := s.store.instance(id)
		if !ok {
			s.fail(c, errInstanceNotFound)
			return
		}
		found = append(found, in)
	}
	sort.Slice(found, func(i, j int) bool { return found[i].InstanceID < found[j].InstanceID })
	kept := found[:0]
	for _, in := range found {
		match := true
		for _, values := range filters {
			match = match && values[in.InstanceID]
		}
		if match {
			kept = append(kept, in)
		}
	}
	found = kept
	next := ""
	if offset > len(found) {
		offset = len(found)
	}
	found = found[offset:]
	if maxResults > 0 && len(found) > maxResults {
		found = found[:maxResults]
		next = strconv.Itoa(offset + maxResults)
	}

	pre := []byte("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeInstancesResponse xmlns=\"" + ec2XMLNS + "\">\n    <requestId>")
	b := append([]byte(nil), "</requestId>\n    <reservationSet>\n"...)
	for _, in := range found {
		b = append(b, "        <item>\n            <reservationId>r-"...)
		b = append(b, in.InstanceID[2:]...)
		b = append(b, "</reservationId>\n            <ownerId>"...)
		b = appendXMLText(b, in.OwnerID)
		b = append(b, "</ownerId>\n            <groupSet/>\n            <instancesSet>\n                <item>\n                    <instanceId>"...)
		b = appendXMLText(b, in.InstanceID)
		b = append(b, "</instanceId>\n                    <instanceState><code>16</code><name>running</name></instanceState>\n                    <privateDnsName>"...)
		b = appendXMLText(b, in.PrivateDNSName)
		b = append(b, "</privateDnsName>\n                </item>\n            </instancesSet>\n        </item>\n"...)
	}
	b = append(b, "    </reservationSet>\n"...)
	if next != "" {
		b = append(b, "    <nextToken>"+next+"</nextToken>\n"...)
	}
	b = append(b, "</DescribeInstancesResponse>\n"...)
	t := answerTemplate{xmlPre: pre, xmlPost: b}
	s.answer(c, &t)
}
