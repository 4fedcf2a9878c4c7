using System.Net;
using Xunit;
using Lisp.Decent.Push;

namespace Lisp.Decent.Tests;

/// <summary>
/// Issue 11 item 4: a push member is identified by its RLOC, never by the UDP source of its peer-group
/// Map-Register alone (lispers.net's ETR sends from 127.0.0.1 while its RLOC is 127.0.0.2).
/// </summary>
public class PushMemberIdentityTests
{
    private static IPAddress A(string s) => IPAddress.Parse(s);

    [Fact]
    public void A_member_registering_from_another_local_address_is_known_by_its_one_rloc()
    {
        Assert.Equal(A("127.0.0.2"), PushGroup.RegisteringMember(A("127.0.0.1"), [A("127.0.0.2")]));
    }

    [Fact]
    public void A_member_registering_from_its_rloc_is_that_rloc_even_when_its_rle_names_every_member()
    {
        Assert.Equal(A("10.0.0.3"), PushGroup.RegisteringMember(A("10.0.0.3"), [A("10.0.0.1"), A("10.0.0.2"), A("10.0.0.3")]));
    }

    [Fact]
    public void An_unregistered_source_beside_several_rlocs_identifies_no_member()
    {
        Assert.Null(PushGroup.RegisteringMember(A("127.0.0.1"), [A("10.0.0.1"), A("10.0.0.2")]));
        Assert.Null(PushGroup.RegisteringMember(A("127.0.0.1"), []));
    }
}
