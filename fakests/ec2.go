package fakests

import (
	"sort"
	"strconv"
)

const ec2XMLNS = "http://ec2.amazonaws.com/doc/2016-11-15/"

// describeInstances answers EC2 DescribeInstances for InstanceId.N (every instance when none
// is given) in EC2's XML shape, one reservation per instance. Like EC2, an unknown ID fails
// the whole call with InvalidInstanceID.NotFound, a malformed one with
// InvalidInstanceID.Malformed. Filters and paging are ignored.
func (s *Server) describeInstances(c *call) {
	var ids []string
	for i := 1; ; i++ {
		v := c.param("InstanceId." + strconv.Itoa(i))
		if v == nil {
			break
		}
		ids = append(ids, string(v))
	}
	var found []Instance
	if len(ids) == 0 {
		found = s.store.allInstances()
		sort.Slice(found, func(i, j int) bool { return found[i].InstanceID < found[j].InstanceID })
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
	b = append(b, "    </reservationSet>\n</DescribeInstancesResponse>\n"...)
	t := answerTemplate{xmlPre: pre, xmlPost: b}
	s.answer(c, &t)
}
